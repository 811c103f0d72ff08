"""Evaluation: TrackEval metrics with each benchmark's preprocessing, COCO detection AP, scoring a model on a build."""
