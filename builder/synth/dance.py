"""The dance stage of the DanceTrack-like source: dancers motion cannot tell apart, appearance can.

DanceTrack was built so that motion-only association fails: dancers of one shape and size move at one speed,
cross each other's paths often and change direction abruptly. The synthetic stage makes that literal:

- every dancer of a sequence has the same size factor and the same speed (:func:`uniform_velocity`);
- two dancers whose boxes meet head-on turn back together with probability ``bump_prob`` (:class:`Bumps`): seen
  from the Kalman filter of a motion-only tracker, a bump and a pass are the same until the two separate, and
  a bump swaps their identities;
- each dancer wears its own costume (:class:`Costumes`): one of 8 hues, 45 degrees apart on the colour wheel
  around the sequence's base hue, times 4 torso textures (plain; horizontal stripes in a pale tint of the hue;
  vertical stripes in a dark shade of it; checks in the opposite hue), drawn without repetition until the 32
  combinations are used; trousers and skin are the same for all. Colour and texture are what tells two dancers
  apart (each texture also changes the torso's mean colour, so a small model sees it too).

Deterministic given the sequence's generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from builder.synth.scene import Look

#: Torso textures (:func:`builder.synth.draw.draw_person` draws them): index into this tuple is ``Look.pattern``.
PATTERNS = ("plain", "hstripes", "vstripes", "checks")
#: Hues per sequence, evenly spread (OpenCV hue units 0..180: 22 units ~ 45 degrees apart).
HUE_SLOTS = 8
#: Largest angle (radians) between a dancer's direction and the horizontal when it starts or turns.
MAX_ANGLE = 0.5
#: Trousers and skin of every dancer (BGR).
TROUSERS = (40, 35, 45)
SKIN = (80, 120, 175)


def _hsv(h: int, s: int, v: int) -> tuple[int, int, int]:
    px = cv2.cvtColor(np.uint8([[[h % 180, s, v]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(px[0]), int(px[1]), int(px[2])


class Costumes:
    """The costumes of one sequence, handed out in a seeded order without repetition (then cycling)."""

    def __init__(self, base_hue: int, rng: np.random.Generator) -> None:
        self.base_hue = base_hue
        self.order = rng.permutation(HUE_SLOTS * len(PATTERNS))
        self.given = 0

    def next_look(self) -> Look:
        """The next dancer's look: a saturated costume colour and its texture's accent (see the module docstring)."""
        combo = int(self.order[self.given % len(self.order)])
        self.given += 1
        hue = self.base_hue + (combo % HUE_SLOTS) * (180 // HUE_SLOTS)
        pattern = combo // HUE_SLOTS
        accent = (None, _hsv(hue, 60, 255), _hsv(hue, 255, 90), _hsv(hue + 90, 230, 225))[pattern]
        return Look(_hsv(hue, 230, 225), TROUSERS, SKIN, pattern=pattern, accent=accent or (0, 0, 0))


def uniform_velocity(speed: float, direction: float, rng: np.random.Generator) -> tuple[float, float]:
    """``(vx, vy)`` of magnitude ``speed`` px / frame, heading left (``direction`` -1) or right (+1) within
    :data:`MAX_ANGLE` of the horizontal."""
    angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
    return direction * speed * math.cos(angle), speed * math.sin(angle)


class Bumps:
    """Head-on meetings of dancers: each meeting is decided once, bump (both turn back) or pass.

    Two dancers meet when their boxes overlap by more than half the narrower width and their foot rows are within
    a quarter of the shorter height, while they move towards each other along x.
    """

    def __init__(self, probability: float, rng: np.random.Generator) -> None:
        self.probability = probability
        self.rng = rng
        self.decided: set[tuple[int, int]] = set()

    def __call__(self, dancers: list, box_of: Callable) -> None:
        """Decide the new meetings among ``dancers`` (objects with ``tid, x, vx, vy``); turn the bumping pairs
        around in place. Pairs that no longer overlap may meet again later."""
        boxes = {a.tid: box_of(a) for a in dancers}
        for i, a in enumerate(dancers):
            for b in dancers[i + 1:]:
                key = (a.tid, b.tid)
                (ax1, _, ax2, ay2), (bx1, _, bx2, by2) = boxes[a.tid], boxes[b.tid]
                overlap = min(ax2, bx2) - max(ax1, bx1)
                if overlap <= 0:
                    self.decided.discard(key)
                    continue
                width = min(ax2 - ax1, bx2 - bx1)
                height = min(ay2 - boxes[a.tid][1], by2 - boxes[b.tid][1])
                approaching = (b.x - a.x) * (b.vx - a.vx) < 0
                if key in self.decided or overlap < width / 2 or abs(ay2 - by2) > height / 4 or not approaching:
                    continue
                self.decided.add(key)
                if self.rng.random() < self.probability:
                    a.vx, b.vx, a.vy, b.vy = -a.vx, -b.vx, -a.vy, -b.vy
