"""Evaluation: one protocol per benchmark (official or unified), TrackEval metrics, COCO AP, a model's locked sets."""
