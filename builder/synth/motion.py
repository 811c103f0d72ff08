"""Motion simulation of the synthetic sequences: :func:`simulate` turns a :class:`SceneSpec` into frames.

Actors move with constant velocity plus Gaussian noise, enter and leave through the image borders, cross each
other and occlude each other; each frame is a list of :class:`~builder.synth.scene.Instance`, sorted far to
near, with its visibility (the fraction of the box inside the frame and not covered by nearer boxes). The
result is a pure function of the sequence's generator state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from builder.synth.dance import Bumps, Costumes, uniform_velocity
from builder.synth.scene import AERIAL_SHAPES, GROUND_SHAPES, VEHICLES, ActorType, Instance, Look, SceneSpec

_SKIN = ((60, 90, 140), (80, 120, 175), (110, 150, 205), (130, 175, 225), (40, 60, 95))


@dataclass
class _Actor:
    """Mutable simulation state of one actor (private to :func:`simulate`)."""

    tid: int
    atype: ActorType
    x: float  # centre x, px
    y: float  # ground styles: bottom (foot) y; aerial: centre y; px
    vx: float  # px per frame at perspective scale 1
    vy: float
    size: float  # individual size factor around 1
    look: Look
    horizontal: bool = True
    rider_tid: int | None = None
    rider_look: Look | None = None
    seen: bool = field(default=False)


class _World:
    """Geometry and spawning rules of one sequence (private: use :func:`simulate`)."""

    def __init__(self, spec: SceneSpec, size: tuple[int, int], rng: np.random.Generator):
        self.spec = spec
        self.w, self.h = size
        self.rng = rng
        self.horizon = {"street": 0.32, "stage": 0.22, "aerial": 0.0}[spec.style] * self.h
        self.next_tid = 1
        self.costume_hue = int(rng.integers(0, 180))
        weights = np.array([t.weight for t in spec.types], float)
        self.type_p = weights / weights.sum()
        # Vehicles of an aerial scene drive along a few horizontal lanes; two lanes run vertically.
        self.lanes_y = np.sort(rng.uniform(0.2, 0.85, size=3)) * self.h
        self.lanes_x = np.sort(rng.uniform(0.25, 0.75, size=1)) * self.w
        self.costumes = Costumes(self.costume_hue, rng) if spec.costumes else None
        self.bumps = Bumps(spec.bump_prob, rng) if spec.bump_prob > 0 else None

    # --- geometry -------------------------------------------------------------------------------------
    def scale_at(self, y: float) -> float:
        """Perspective scale of an actor whose foot is at row ``y``: 1 at the bottom edge, small near the horizon."""
        if self.spec.style == "aerial":
            return 1.0
        return float(np.clip((y - self.horizon) / (self.h - self.horizon), 0.2, 1.2))

    def box_of(self, a: _Actor) -> tuple[int, int, int, int]:
        """Tight integer box of an actor from its anchor, kind, size and perspective."""
        kind = a.atype.kind
        if self.spec.style == "aerial":
            rel_h, aspect = AERIAL_SHAPES[kind]
            bh = max(rel_h * self.h * a.size, 3.0)
            bw = max(bh * aspect, 2.0)
            if kind in VEHICLES | {"bicycle", "motor"} and not a.horizontal:
                bw, bh = bh, bw
            cy = a.y
        else:
            rel_h, aspect = GROUND_SHAPES[kind]
            if self.spec.style == "stage":
                rel_h *= 1.15
            bh = max(rel_h * self.h * a.size * self.scale_at(a.y), 4.0)
            bw = max(bh * aspect, 2.0)
            cy = a.y - bh / 2
        x1 = int(round(a.x - bw / 2))
        y1 = int(round(cy - bh / 2))
        return x1, y1, x1 + max(int(round(bw)), 2), y1 + max(int(round(bh)), 3)

    def depth_of(self, a: _Actor, box: tuple[int, int, int, int]) -> float:
        """Ground styles: the foot row (nearer = lower in the image). Aerial: a layer per kind, then row."""
        if self.spec.style != "aerial":
            return float(box[3])
        layer = 0.0 if a.atype.kind == "region" else (1.0 if a.atype.kind in VEHICLES else 2.0)
        return layer * 10 * self.h + box[3]

    # --- appearance ------------------------------------------------------------------------------------
    def _hsv(self, h: int, s: int, v: int) -> tuple[int, int, int]:
        px = cv2.cvtColor(np.uint8([[[h % 180, s, v]]]), cv2.COLOR_HSV2BGR)[0, 0]
        return int(px[0]), int(px[1]), int(px[2])

    def look_for(self, atype: ActorType) -> Look:
        """Colours of a new actor: saturated clothes for people, dark paint for vehicles, muted for distractors."""
        r = self.rng
        skin = _SKIN[int(r.integers(0, len(_SKIN)))]
        kind = atype.kind
        if kind in VEHICLES:
            main = self._hsv(int(r.integers(0, 180)), int(r.integers(60, 200)), int(r.integers(35, 95)))
            return Look(main, self._hsv(105, int(r.integers(10, 60)), int(r.integers(205, 245))), skin)
        if kind in ("crowd", "region"):
            return Look((0, 0, 0), (0, 0, 0), skin, self._parts(kind))
        if "distractor" in atype.flags:
            grey = int(r.integers(120, 190))
            return Look((grey, grey, grey), (grey - 40, grey - 40, grey - 40), (grey, grey, grey))
        if self.costumes is not None:
            return self.costumes.next_look()
        hue = int(r.integers(0, 180))
        main = self._hsv(hue, int(r.integers(190, 256)), int(r.integers(170, 256)))
        legs = self._hsv(int(r.integers(0, 180)), int(r.integers(40, 160)), int(r.integers(40, 110)))
        return Look(main, legs, skin)

    def _parts(self, kind: str) -> tuple[tuple[float, ...], ...]:
        """Sub-figures of a crowd (people side by side) or of a clutter patch (packed parked cars)."""
        r = self.rng
        rows = []
        if kind == "crowd":
            n = int(r.integers(4, 8))
            for i in range(n):
                x0 = i / (n + 1)
                top = 0.0 if i == 0 else float(r.uniform(0.0, 0.15))
                c = self._hsv(int(r.integers(0, 180)), 220, 220)
                rows.append((x0, top, x0 + 2 / (n + 1), 1.0, *c))
            return tuple(rows)
        nx, ny = int(r.integers(3, 6)), int(r.integers(3, 5))
        for i in range(nx):
            for j in range(ny):
                c = self._hsv(int(r.integers(0, 180)), int(r.integers(40, 200)), int(r.integers(40, 220)))
                rows.append((i / nx + 0.02, j / ny + 0.04, (i + 1) / nx - 0.02, (j + 1) / ny - 0.04, *c))
        return tuple(rows)

    # --- spawning ---------------------------------------------------------------------------------------
    def _speed(self) -> float:
        """A new actor's speed, px / frame at perspective scale 1 (one speed for all dancers)."""
        if self.costumes is not None:
            return self.spec.speed * self.w
        return self.spec.speed * self.w * float(self.rng.uniform(0.6, 1.4))

    def spawn(self, at_border: bool, atype: ActorType | None = None) -> list[_Actor]:
        """A new actor (and its rider), placed inside the frame or just outside a border, moving inwards.

        ``atype`` None draws the type from the scene's weighted types.
        """
        r = self.rng
        if atype is None:
            atype = self.spec.types[int(r.choice(len(self.spec.types), p=self.type_p))]
        if atype.static and at_border:
            return []
        size = 1.0 if self.costumes is not None else float(r.uniform(0.85, 1.15))  # dancers: one size
        a = _Actor(self.next_tid, atype, 0.0, 0.0, 0.0, 0.0, size, self.look_for(atype))
        self.next_tid += 1
        self._place(a, at_border)
        if atype.kind in ("bicycle", "motor") and r.random() < self.spec.rider_prob:
            a.rider_tid, a.rider_look = self.next_tid, self.look_for(ActorType("rider", "person", 1.0))
            self.next_tid += 1
        return [a]

    def _place(self, a: _Actor, at_border: bool) -> None:
        r = self.rng
        if self.spec.style == "aerial":
            self._place_aerial(a, at_border)
            return
        lo = self.horizon + (0.5 if a.atype.kind in VEHICLES else 0.25) * (self.h - self.horizon)
        hi = self.h * (0.92 if self.spec.bounce else 1.0)
        if self.spec.bounce:
            lo = self.horizon + 0.45 * (self.h - self.horizon)
        a.y = float(r.uniform(lo, hi))
        direction = 1.0 if r.random() < 0.5 else -1.0
        if not a.atype.static:
            a.vx = direction * self._speed()
            a.vy = float(r.normal(0, 0.15 * abs(a.vx))) if a.atype.kind == "person" else 0.0
        half_w = (self.box_of(a)[2] - self.box_of(a)[0]) / 2
        if at_border:
            a.x = -half_w + 1 if direction > 0 else self.w + half_w - 1
        else:
            a.x = float(r.uniform(0.0, 1.0)) * self.w
        if self.costumes is not None and not a.atype.static:
            a.vx, a.vy = uniform_velocity(self._speed(), direction, r)
        elif self.spec.bounce and not at_border:
            a.vy = float(r.normal(0, 0.5 * abs(a.vx)))

    def _place_aerial(self, a: _Actor, at_border: bool) -> None:
        r = self.rng
        kind = a.atype.kind
        speed = 0.0 if a.atype.static else self._speed() * (1.0 if kind in VEHICLES else 0.35)
        direction = 1.0 if r.random() < 0.5 else -1.0
        if kind in VEHICLES | {"bicycle", "motor"}:
            a.horizontal = bool(r.random() < 0.75)
        if kind in VEHICLES and a.horizontal:
            a.y = float(self.lanes_y[int(r.integers(0, len(self.lanes_y)))] + r.normal(0, 0.02 * self.h))
            a.vx, a.x = direction * speed, float(r.uniform(0.05, 0.95) * self.w)
        elif kind in VEHICLES:
            a.x = float(self.lanes_x[0] + r.normal(0, 0.02 * self.w))
            a.vy, a.y = direction * speed, float(r.uniform(0.05, 0.95) * self.h)
        else:
            if kind in ("bicycle", "motor"):  # along the box's long side
                ang = (0.0 if a.horizontal else 0.5 * math.pi) + (math.pi if direction < 0 else 0.0)
            else:
                ang = float(r.uniform(0, 2 * math.pi))
            a.vx, a.vy = speed * math.cos(ang), speed * math.sin(ang)
            a.x, a.y = float(r.uniform(0.05, 0.95) * self.w), float(r.uniform(0.05, 0.95) * self.h)
        if at_border:
            self._to_border(a)

    def _to_border(self, a: _Actor) -> None:
        """Move an aerial actor just outside the border it enters from (the one behind its velocity)."""
        x1, y1, x2, y2 = self.box_of(a)
        if abs(a.vx) >= abs(a.vy):
            a.x = -(x2 - x1) / 2 + 1 if a.vx > 0 else self.w + (x2 - x1) / 2 - 1
        else:
            a.y = -(y2 - y1) / 2 + 1 if a.vy > 0 else self.h + (y2 - y1) / 2 - 1

    # --- motion -----------------------------------------------------------------------------------------
    def step(self, a: _Actor) -> None:
        """Constant velocity plus noise: position += velocity * perspective scale + N(0, sigma)."""
        if a.atype.static:
            return
        r = self.rng
        s = self.scale_at(a.y)
        noise = 0.08 * max(abs(a.vx), abs(a.vy), 0.5)
        a.x += a.vx * s + float(r.normal(0, noise))
        a.y += a.vy * s + float(r.normal(0, noise * (0.3 if self.spec.style != "aerial" else 1.0)))
        if self.spec.bounce:
            self._bounce(a)
        elif self.spec.style != "aerial":
            a.y = float(np.clip(a.y, self.horizon + 0.2 * (self.h - self.horizon), 1.08 * self.h))

    def _bounce(self, a: _Actor) -> None:
        """Dancers turn at the stage's edges and now and then change direction (paths cross often)."""
        r = self.rng
        lo_y, hi_y = self.horizon + 0.45 * (self.h - self.horizon), 0.97 * self.h
        if not 0.08 * self.w < a.x < 0.92 * self.w:
            a.vx = -abs(a.vx) if a.x > self.w / 2 else abs(a.vx)
        if not lo_y < a.y < hi_y:
            a.vy = -abs(a.vy) if a.y > hi_y else abs(a.vy)
        if r.random() < 0.05:
            if self.costumes is not None:  # an abrupt turn at the same speed
                a.vx, a.vy = uniform_velocity(math.hypot(a.vx, a.vy), -math.copysign(1.0, a.vx), r)
            else:
                a.vx, a.vy = -a.vx, float(r.normal(0, 0.5 * abs(a.vx) + 0.2))

    def outside(self, box: tuple[int, int, int, int]) -> bool:
        """True when the box lies wholly outside the frame (the actor has left)."""
        x1, y1, x2, y2 = box
        return x2 <= 0 or y2 <= 0 or x1 >= self.w or y1 >= self.h

    def instances(self, a: _Actor) -> list[Instance]:
        """The frame's instance(s) of an actor: itself, and its rider seated on top of it if any."""
        box = self.box_of(a)
        inst = [Instance(a.tid, a.atype.category, a.atype.kind, box, self.depth_of(a, box), a.look,
                         a.atype.flags, a.horizontal)]
        if a.rider_tid is not None and a.rider_look is not None:
            x1, y1, x2, y2 = box
            rh = int(round((y2 - y1) * 1.5))
            rw = max(int(round(rh * 0.4)), 2)
            cx = (x1 + x2) // 2
            rbox = (cx - rw // 2, y1 + (y2 - y1) // 2 - rh, cx - rw // 2 + rw, y1 + (y2 - y1) // 2)
            inst.append(Instance(a.rider_tid, "rider", "person", rbox, self.depth_of(a, box) + 0.5,
                                 a.rider_look, frozenset({"rider"}), a.horizontal))
        return inst


def _visibility(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> list[float]:
    """Fraction of each box inside the frame and not covered by the boxes after it (nearer ones).

    ``boxes`` are sorted far to near. Box-level occlusion, as the MOT17 visibility annotation is defined
    (visible area / full area of the box, occluders and the frame edge both counted).
    """
    out = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        covered = np.ones((y2 - y1, x2 - x1), bool)
        covered[max(0, -y1):max(0, height - y1), max(0, -x1):max(0, width - x1)] = False
        for ox1, oy1, ox2, oy2 in boxes[i + 1:]:
            cx1, cy1, cx2, cy2 = max(x1, ox1), max(y1, oy1), min(x2, ox2), min(y2, oy2)
            if cx1 < cx2 and cy1 < cy2:
                covered[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1] = True
        out.append(1.0 - float(covered.mean()))
    return out


@dataclass(frozen=True)
class Simulation:
    """The result of :func:`simulate`.

    Attributes:
        frames: one list per frame (frame ``k`` of the sequence is element ``k - 1``) of :class:`Instance`,
            sorted far to near (drawing order), ``visibility`` filled.
        lanes_y, lanes_x: aerial style: rows / columns (px) of the roads the vehicles drive along.
    """

    frames: list[list[Instance]]
    lanes_y: tuple[float, ...]
    lanes_x: tuple[float, ...]


def simulate(spec: SceneSpec, size: tuple[int, int], n_frames: int, rng: np.random.Generator) -> Simulation:
    """Simulate ``n_frames`` frames of one sequence.

    Args:
        spec: the source's scene description.
        size: ``(width, height)`` of the frames in pixels.
        n_frames: sequence length (>= 1).
        rng: the sequence's generator; the result is a pure function of its state.

    Returns:
        A :class:`Simulation`. Instances wholly outside the frame are omitted; an actor that has entered and
        left is never re-used, so a track id appears in one contiguous run of frames.
    """
    world = _World(spec, size, rng)
    actors: list[_Actor] = []
    for _ in range(int(rng.integers(spec.objects[0], spec.objects[1] + 1))):
        actors += world.spawn(at_border=False)
    for atype, probability in spec.extras:
        if rng.random() < probability:
            actors += world.spawn(at_border=False, atype=atype)
    frames: list[list[Instance]] = []
    for _ in range(n_frames):
        moving = sum(1 for a in actors if not a.atype.static)
        if moving < spec.objects[1] and rng.random() < spec.enter_prob:
            actors += world.spawn(at_border=True)
        insts = [i for a in actors for i in world.instances(a) if not world.outside(i.box)]
        insts.sort(key=lambda i: (i.depth, i.tid))
        vis = _visibility([i.box for i in insts], world.w, world.h)
        frames.append([_with_visibility(i, v) for i, v in zip(insts, vis, strict=True)])
        for a in actors:
            a.seen = a.seen or not world.outside(world.box_of(a))
            world.step(a)
        if world.bumps is not None:  # dancers meeting head-on may turn back together
            world.bumps([a for a in actors if not a.atype.static], world.box_of)
        # An actor that was in view and is now wholly outside has exited for good.
        actors = [a for a in actors if not (a.seen and world.outside(world.box_of(a)))]
    lanes = (tuple(map(float, world.lanes_y)), tuple(map(float, world.lanes_x)))
    return Simulation(frames, *lanes) if spec.style == "aerial" else Simulation(frames, (), ())


def _with_visibility(inst: Instance, visibility: float) -> Instance:
    return Instance(inst.tid, inst.category, inst.kind, inst.box, inst.depth, inst.look, inst.flags,
                    inst.horizontal, visibility)
