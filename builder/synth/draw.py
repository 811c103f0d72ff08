"""OpenCV rendering of the synthetic sequences: backgrounds, people, vehicles; :func:`render_frames`.

Every instance is drawn exactly within its box (see :mod:`builder.synth.scene` for the coordinates and
colours). Visual cues are deliberately strong so that a tiny detector trained from scratch on a CPU learns
them in minutes: a person is a saturated body with a skin-tone head circle and darker legs (box aspect w/h
~0.4); a vehicle is a dark body with light windows and black wheels (aspect ~2); backgrounds are smooth,
low-contrast textures with mild per-frame noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from builder.synth.motion import Simulation
from builder.synth.scene import VEHICLES, Instance, Look


def background(style: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth low-contrast background (H, W, 3) uint8 BGR for a sequence: gradient + blurred noise."""
    w, h = size
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    if style == "street":
        sky = np.array(rng.uniform([170, 160, 140], [210, 195, 180]), np.float32)
        ground = np.array(rng.uniform([95, 95, 95], [135, 130, 125]), np.float32)
        split = (rows > 0.32).astype(np.float32)
        img = sky * (1 - split) + ground * split + 12 * (rows - 0.5)
    elif style == "stage":
        wall = np.array(rng.uniform([60, 40, 50], [110, 80, 100]), np.float32)
        floor = np.array(rng.uniform([80, 100, 120], [110, 130, 150]), np.float32)
        split = (rows > 0.22).astype(np.float32)
        img = wall * (1 - split) + floor * split
    else:
        img = np.array(rng.uniform([90, 120, 100], [120, 150, 130]), np.float32) + 6 * (rows - 0.5)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    # Low-frequency texture, mostly in brightness (sigma 7 grey levels) with a faint tint (sigma 2).
    grid = (max(h // 12, 2), max(w // 12, 2))
    coarse = rng.normal(0, 7, size=(*grid, 1)) + rng.normal(0, 2, size=(*grid, 3))
    img += cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_aerial_roads(img: np.ndarray, lanes_y: Sequence[float], lanes_x: Sequence[float]) -> None:
    """Faint grey road bands under the aerial lanes (in place)."""
    h, w = img.shape[:2]
    half = max(int(0.045 * h), 2)
    for y in lanes_y:
        band = img[max(int(y) - half, 0):int(y) + half]
        band[:] = (0.6 * band + 0.4 * 115).astype(np.uint8)
    for x in lanes_x:
        band = img[:, max(int(x) - half, 0):int(x) + half]
        band[:] = (0.6 * band + 0.4 * 115).astype(np.uint8)


def _rect(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, color: Sequence[int]) -> None:
    """Filled rectangle covering columns x1..x2-1 and rows y1..y2-1 (pixel edges, rounded)."""
    a, b, c, d = int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1
    if c >= a and d >= b:
        cv2.rectangle(img, (a, b), (c, d), tuple(int(v) for v in color), -1)


def _torso(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, look: Look) -> None:
    """The torso rectangle in ``look.main`` with ``look.pattern``'s texture in ``look.accent`` (see
    :data:`builder.synth.dance.PATTERNS`): stripes and checks of a period of 1/3 of the torso width, at least 4 px."""
    _rect(img, x1, y1, x2, y2, look.main)
    if look.pattern == 0:
        return
    half = max(int(round((x2 - x1) / 6)), 2)  # half a period
    a, b = int(round(x1)), int(round(y1))
    h, w = img.shape[:2]
    ca, cb, cc, cd = max(a, 0), max(b, 0), min(int(round(x2)), w), min(int(round(y2)), h)  # the part in view
    if cc <= ca or cd <= cb:
        return
    rows, cols = np.mgrid[cb:cd, ca:cc]
    band_r, band_c = ((rows - b) // half) % 2 == 1, ((cols - a) // half) % 2 == 1
    mask = {1: band_r, 2: band_c, 3: band_r ^ band_c}[look.pattern]
    img[cb:cd, ca:cc][mask] = look.accent


def draw_person(img: np.ndarray, box: Sequence[int], look: Look) -> None:
    """A person filling ``box`` exactly: skin-tone head circle, saturated (maybe textured) torso, darker legs."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    r = max(min(int(w * 0.3), int(h * 0.12)), 1)
    cx = (x1 + x2 - 1) // 2
    neck = y1 + 2 * r + 1
    hip = y1 + int(round(h * 0.62))
    _torso(img, x1, neck, x2, max(hip, neck + 1), look)
    gap = max(w // 6, 1) if w >= 4 else 0
    _rect(img, x1 + w * 0.12, hip, cx - gap // 2 + 1, y2, look.second)
    _rect(img, cx + (gap + 1) // 2, hip, x2 - w * 0.12, y2, look.second)
    cv2.circle(img, (cx, y1 + r), r, look.skin, -1)


def draw_vehicle_side(img: np.ndarray, box: Sequence[int], look: Look, kind: str) -> None:
    """A vehicle seen from the side filling ``box``: dark body and cabin, light windows, black wheels."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    wheel_r = max(int(h * 0.16), 1)
    body_top = y1 + (0 if kind in ("bus", "truck", "van") else h * 0.38)
    body_bottom = y2 - wheel_r
    _rect(img, x1, body_top, x2, body_bottom, look.main)
    if kind == "car":
        _rect(img, x1 + w * 0.22, y1, x2 - w * 0.2, body_top + 1, look.main)
        _rect(img, x1 + w * 0.27, y1 + h * 0.08, x1 + w * 0.48, body_top, look.second)
        _rect(img, x1 + w * 0.52, y1 + h * 0.08, x2 - w * 0.25, body_top, look.second)
    elif kind == "truck":
        _rect(img, x2 - w * 0.28, y1 + h * 0.15, x2 - w * 0.06, y1 + h * 0.42, look.second)
        _rect(img, x1 + w * 0.04, y1 + h * 0.12, x2 - w * 0.34, body_bottom - h * 0.1,
              tuple(min(int(c) + 40, 255) for c in look.main))
    else:
        n = 4 if kind == "bus" else 2
        for i in range(n):
            wx = x1 + w * (0.06 + 0.9 * i / n)
            _rect(img, wx, y1 + h * 0.15, wx + w * 0.9 / n - w * 0.04, y1 + h * 0.42, look.second)
    for fx in (0.2, 0.8):
        cv2.circle(img, (int(x1 + w * fx), y2 - 1 - wheel_r), wheel_r, (20, 20, 20), -1)
    _rect(img, x2 - max(w * 0.04, 1), body_top + h * 0.1, x2, body_top + h * 0.22, (40, 60, 230))


def draw_two_wheeler(img: np.ndarray, box: Sequence[int], look: Look) -> None:
    """A bicycle / motorcycle filling ``box``: two black wheels joined by a coloured frame."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    r = max(min(int(h * 0.45), int(w * 0.3)), 1)
    yc = y2 - 1 - r
    cv2.circle(img, (x1 + r, yc), r, (25, 25, 25), -1)
    cv2.circle(img, (x2 - 1 - r, yc), r, (25, 25, 25), -1)
    _rect(img, x1 + r, y1, x2 - r, y1 + max(h * 0.35, 1), look.main)


def draw_vehicle_top(img: np.ndarray, box: Sequence[int], look: Look, horizontal: bool) -> None:
    """A vehicle seen from above filling ``box``: dark body, light windscreen and rear window."""
    x1, y1, x2, y2 = box
    _rect(img, x1, y1, x2, y2, look.main)
    if horizontal:
        w, h = x2 - x1, y2 - y1
        _rect(img, x1 + w * 0.62, y1 + h * 0.18, x1 + w * 0.78, y2 - h * 0.18, look.second)
        _rect(img, x1 + w * 0.12, y1 + h * 0.22, x1 + w * 0.22, y2 - h * 0.22, look.second)
    else:
        w, h = x2 - x1, y2 - y1
        _rect(img, x1 + w * 0.18, y1 + h * 0.62, x2 - w * 0.18, y1 + h * 0.78, look.second)
        _rect(img, x1 + w * 0.22, y1 + h * 0.12, x2 - w * 0.22, y1 + h * 0.22, look.second)


def _draw_parts(img: np.ndarray, box: Sequence[int], look: Look, kind: str) -> None:
    """Crowds: small people side by side; clutter regions: a grey patch of packed coloured blocks."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if kind == "region":
        _rect(img, x1, y1, x2, y2, (105, 105, 105))
    for px1, py1, px2, py2, b, g, r in look.parts:
        sub = (int(x1 + px1 * w), int(y1 + py1 * h), int(x1 + px2 * w), int(y1 + py2 * h))
        if kind == "crowd":
            sub = (sub[0], sub[1], min(max(sub[2], sub[0] + 2), x2), y2)
            draw_person(img, sub, Look((int(b), int(g), int(r)), (50, 50, 60), look.skin))
        else:
            _rect(img, *sub, (b, g, r))


def draw_instance(img: np.ndarray, inst: Instance, style: str) -> None:
    """Draw one instance into ``img`` (H, W, 3) uint8 BGR, in place, exactly within ``inst.box``."""
    kind = inst.kind
    if kind in ("person", "sitting"):
        draw_person(img, inst.box, inst.look)
    elif kind in VEHICLES:
        if style == "aerial":
            draw_vehicle_top(img, inst.box, inst.look, inst.horizontal)
        else:
            draw_vehicle_side(img, inst.box, inst.look, kind)
    elif kind in ("bicycle", "motor"):
        if style == "aerial":
            x1, y1, x2, y2 = inst.box
            _rect(img, x1, y1, x2, y2, (30, 30, 30))
            _rect(img, x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.3, x2 - (x2 - x1) * 0.3, y2 - (y2 - y1) * 0.3,
                  inst.look.main)
        else:
            draw_two_wheeler(img, inst.box, inst.look)
    else:
        _draw_parts(img, inst.box, inst.look, kind)


def render_frames(style: str, sim: Simulation, size: tuple[int, int], rng: np.random.Generator,
                  noise_sigma: float = 2.5) -> Iterator[np.ndarray]:
    """Yield one (H, W, 3) uint8 BGR image per simulated frame of a ``size = (width, height)`` sequence.

    Each image is the sequence's background (:func:`background`, plus roads in the aerial style), the
    frame's instances drawn far to near, and Gaussian noise of ``noise_sigma`` grey levels (mild sensor
    noise). Deterministic given ``rng``'s state.
    """
    base = background(style, size, rng)
    if style == "aerial":
        draw_aerial_roads(base, sim.lanes_y, sim.lanes_x)
    for insts in sim.frames:
        img = base.copy()
        for inst in insts:
            draw_instance(img, inst, style)
        noise = rng.normal(0.0, noise_sigma, size=img.shape).astype(np.float32)
        yield np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
