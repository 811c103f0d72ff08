"""Evaluation: one protocol per benchmark (official: the benchmark's own tool's rules; unified: the project's classes),
TrackEval's HOTA / CLEAR / Identity metrics, COCO detection AP, scoring a model on a build's locked sets."""
