"""Tracking: the ByteTrack-style tracker, its Kalman filter, and running a detector + tracker over sequences."""
