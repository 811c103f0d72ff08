"""Constant-velocity Kalman filter over boxes in (cx, cy, a, h) space, batched over tracks.

The model follows SORT / DeepSORT / ByteTrack (Wojke et al., "Simple Online and Realtime Tracking with a
Deep Association Metric", ICIP 2017; Zhang et al., "ByteTrack", ECCV 2022): the state is
``(cx, cy, a, h, vcx, vcy, va, vh)`` with box centre ``cx, cy`` (pixels), aspect ratio ``a = w / h``
and height ``h`` (pixels), plus their velocities per frame. Motion is constant velocity with unit time
step; the measurement is ``(cx, cy, a, h)``. Process and measurement noise standard deviations scale
with the box height (1/20 of the height for positions, 1/160 for velocities; the aspect ratio has fixed
standard deviations: 1e-2 process / 1e-5 velocity noise and 1e-1 measurement noise), the values those
trackers use (DeepSORT / ByteTrack ``kalman_filter.py``: ``predict`` and ``project``). This is an independent implementation of that published model.
"""

from __future__ import annotations

import numpy as np

#: Standard deviation of position noise as a fraction of the box height (SORT/DeepSORT/ByteTrack value).
STD_WEIGHT_POSITION = 1.0 / 20
#: Standard deviation of velocity noise as a fraction of the box height (same source).
STD_WEIGHT_VELOCITY = 1.0 / 160
#: Process noise on the aspect ratio / its velocity, also the initial aspect uncertainty (same source).
STD_ASPECT = 1e-2
STD_ASPECT_VELOCITY = 1e-5
#: Measurement noise on the aspect ratio (DeepSORT/ByteTrack ``project``: 1e-1, ten times the process noise).
STD_ASPECT_MEASUREMENT = 1e-1

_NDIM = 4


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy pixels -> (N, 4) (cx, cy, a = w / h, h); heights are floored at 1e-6 px."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) (cx, cy, a, h, ...) -> (N, 4) xyxy pixels (extra columns such as velocities are ignored)."""
    s = np.asarray(xyah, np.float64).reshape(-1, xyah.shape[-1])
    w = s[:, 2] * s[:, 3]
    return np.stack([s[:, 0] - w / 2, s[:, 1] - s[:, 3] / 2, s[:, 0] + w / 2, s[:, 1] + s[:, 3] / 2], axis=1)


class KalmanFilterXYAH:
    """Batched constant-velocity Kalman filter; every method takes and returns stacked arrays.

    Shapes: ``mean (N, 8)``, ``covariance (N, 8, 8)``, ``measurement (N, 4)`` in (cx, cy, a, h) pixels.
    """

    def __init__(self) -> None:
        self._motion = np.eye(2 * _NDIM)
        self._motion[:_NDIM, _NDIM:] = np.eye(_NDIM)  # x_{t+1} = x_t + v_t (unit time step: one frame)
        self._observe = np.eye(_NDIM, 2 * _NDIM)  # measurement = position part of the state

    @staticmethod
    def _std(h: np.ndarray, pos: float, vel: float | None) -> np.ndarray:
        """Per-track standard deviations (N, 4) or (N, 8) scaled by the height ``h`` (N,)."""
        cols = [pos * h, pos * h, np.full_like(h, STD_ASPECT), pos * h]
        if vel is not None:
            cols += [vel * h, vel * h, np.full_like(h, STD_ASPECT_VELOCITY), vel * h]
        return np.stack(cols, axis=1)

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks at ``measurement (N, 4)`` with zero velocity; returns ``mean (N, 8), cov (N, 8, 8)``.

        Initial uncertainty: 2 x position std and 10 x velocity std (the SORT/ByteTrack choice).
        """
        z = np.asarray(measurement, np.float64).reshape(-1, _NDIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        std = self._std(z[:, 3], 2 * STD_WEIGHT_POSITION, 10 * STD_WEIGHT_VELOCITY)
        cov = np.zeros((len(z), 2 * _NDIM, 2 * _NDIM))
        idx = np.arange(2 * _NDIM)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: ``mean' = F mean``, ``cov' = F cov F^T + Q`` (Q scaled by the height)."""
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        std = self._std(mean[:, 3], STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY)
        q = np.zeros_like(cov)
        idx = np.arange(2 * _NDIM)
        q[:, idx, idx] = std**2
        new_mean = mean @ self._motion.T
        new_cov = self._motion @ cov @ self._motion.T + q
        return new_mean, new_cov

    def update(self, mean: np.ndarray, cov: np.ndarray,
               measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct ``mean (N, 8), cov (N, 8, 8)`` with ``measurement (N, 4)``; returns the posterior.

        Measurement noise R = diag(h/20, h/20, 1e-1, h/20)^2 with h the predicted height (DeepSORT ``project``).
        """
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        std = self._std(mean[:, 3], STD_WEIGHT_POSITION, None)
        std[:, 2] = STD_ASPECT_MEASUREMENT
        r = np.zeros((len(mean), _NDIM, _NDIM))
        idx = np.arange(_NDIM)
        r[:, idx, idx] = std**2
        h_mat = self._observe
        proj_mean = mean @ h_mat.T  # (N, 4)
        proj_cov = h_mat @ cov @ h_mat.T + r  # (N, 4, 4) innovation covariance S
        cross = cov @ h_mat.T  # (N, 8, 4) P H^T
        # Kalman gain K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
        gain = np.linalg.solve(proj_cov, np.swapaxes(cross, 1, 2)).swapaxes(1, 2)  # (N, 8, 4)
        innovation = np.asarray(measurement, np.float64).reshape(-1, _NDIM) - proj_mean
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ proj_cov @ np.swapaxes(gain, 1, 2)
        return new_mean, new_cov
