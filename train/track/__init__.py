"""Tracking: the motion-only ByteTrack-style and the motion + appearance trackers, their Kalman filter, and running them over a detector's or public detections."""
