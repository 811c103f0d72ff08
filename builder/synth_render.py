"""Motion simulation and OpenCV rendering of the synthetic sources written by :mod:`builder.synth`.

A scene is a fixed background plus *actors* (people, vehicles, two-wheelers, crowds, clutter patches) that
move with constant velocity plus Gaussian noise, enter and leave through the image borders, cross each other
and occlude each other (drawn far to near). Each frame yields :class:`Instance` records: the actor's tight box
(the extents of what is drawn), its depth, visibility and look, from which :mod:`builder.synth` writes the
label files of each official format.

Coordinates: pixels, origin at the top-left corner, boxes as integer pixel edges ``(x1, y1, x2, y2)`` with
``x2 = x1 + width``: the box covers columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``. Boxes here are NOT
clipped to the frame; :func:`clip_box` does that. Colours are BGR ``uint8`` triples (OpenCV order).

Visual cues are deliberately strong so that a tiny detector trained from scratch on a CPU learns them in
minutes: a person is a saturated body with a skin-tone head circle and darker legs (box aspect w/h ~0.4); a
vehicle is a dark body with light windows and black wheels (aspect ~2); backgrounds are smooth, low-contrast
textures with mild per-frame noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

#: Scene styles: ground-level street (BDD100K, MOT17), ground-level dance stage (DanceTrack), top-down aerial
#: view (VisDrone).
STYLES = ("street", "stage", "aerial")

#: Drawing kinds and their box (height as a fraction of the image height at perspective scale 1, aspect
#: width / height). Ground sizes apply to "street"/"stage", aerial sizes to "aerial" (no perspective there:
#: a drone looks straight down, so every object of a kind has about the same size).
GROUND_SHAPES: dict[str, tuple[float, float]] = {
    "person": (0.44, 0.40),
    "car": (0.24, 2.0),
    "van": (0.30, 1.8),
    "truck": (0.34, 1.7),
    "bus": (0.38, 2.6),
    "bicycle": (0.18, 1.5),
    "motor": (0.20, 1.6),
    "crowd": (0.26, 1.6),
}
AERIAL_SHAPES: dict[str, tuple[float, float]] = {
    "person": (0.085, 0.42),
    "sitting": (0.06, 0.8),
    "car": (0.068, 2.0),
    "van": (0.078, 2.1),
    "truck": (0.088, 2.6),
    "bus": (0.095, 3.0),
    "bicycle": (0.032, 2.0),
    "motor": (0.036, 2.2),
    "region": (0.25, 1.6),
}
_VEHICLES = frozenset({"car", "van", "truck", "bus"})
_SKIN = ((60, 90, 140), (80, 120, 175), (110, 150, 205), (130, 175, 225), (40, 60, 95))


@dataclass(frozen=True)
class ActorType:
    """One kind of actor a scene spawns.

    Attributes:
        category: raw category the label writer turns into the format's own category field (e.g.
            ``"pedestrian"`` for BDD100K, ``"1"`` for MOT17).
        kind: drawing kind, a key of :data:`GROUND_SHAPES` / :data:`AERIAL_SHAPES`.
        weight: relative spawn frequency among the scene's types.
        static: never moves (parked car, standing person, clutter patch).
        flags: extra labels passed to the writer unchanged (``"crowd"``, ``"score0"``, ``"rider"``,
            ``"distractor"``).
    """

    category: str
    kind: str
    weight: float
    static: bool = False
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SceneSpec:
    """How one source's scenes look and move.

    Attributes:
        style: one of :data:`STYLES`.
        types: the actor types spawned, with weights.
        objects: (min, max) number of actors at the start of a sequence; new actors enter through the borders
            while fewer than ``max`` are in view.
        speed: typical speed, as a fraction of the image width per frame, of a near actor.
        enter_prob: probability per frame that one new actor enters through a border.
        rider_prob: probability that a spawned two-wheeler carries a rider (a second, person actor).
        similar_looks: dancers of a sequence share one costume hue (DanceTrack's hard case).
        bounce: actors stay inside the frame and turn at its edges (a dance stage) instead of leaving.
        extras: ``(type, probability)``: each type is placed once at the start of a sequence with that
            probability, on top of ``objects`` (crowds, clutter regions, static persons, distractors).
    """

    style: str
    types: tuple[ActorType, ...]
    objects: tuple[int, int]
    speed: float
    enter_prob: float = 0.3
    rider_prob: float = 0.0
    similar_looks: bool = False
    bounce: bool = False
    extras: tuple[tuple[ActorType, float], ...] = ()

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"SceneSpec.style {self.style!r} is not one of {STYLES}")
        shapes = AERIAL_SHAPES if self.style == "aerial" else GROUND_SHAPES
        for t in (*self.types, *(e[0] for e in self.extras)):
            if t.kind not in shapes:
                raise ValueError(f"actor kind {t.kind!r} cannot be drawn in style {self.style!r}; "
                                 f"valid kinds: {sorted(shapes)}")


@dataclass(frozen=True)
class Look:
    """Appearance of an actor, fixed at spawn: BGR colours and, for crowds and clutter, sub-parts.

    ``parts`` holds ``(x0, y0, x1, y1, b, g, r)`` rows in box-relative units (0..1) for crowds and
    clutter patches, and is empty otherwise.
    """

    main: tuple[int, int, int]
    second: tuple[int, int, int]
    skin: tuple[int, int, int]
    parts: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class Instance:
    """One actor in one frame.

    Attributes:
        tid: track id, 1-based, stable for the actor over the whole sequence.
        category: raw category (see :class:`ActorType`).
        kind: drawing kind.
        box: ``(x1, y1, x2, y2)`` int pixel edges, NOT clipped to the frame.
        depth: drawing order key; larger is nearer the camera (drawn later, occludes the smaller).
        look: the actor's appearance.
        flags: the actor type's flags.
        horizontal: aerial vehicles only: moving along x (box wide) rather than y (box tall).
        visibility: fraction of the box inside the frame and not covered by nearer boxes, in [0, 1]
            (filled by :func:`simulate`).
    """

    tid: int
    category: str
    kind: str
    box: tuple[int, int, int, int]
    depth: float
    look: Look
    flags: frozenset[str]
    horizontal: bool = True
    visibility: float = 1.0


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


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Clip an xyxy pixel box to the frame ``[0, width] x [0, height]``; the result may be empty."""
    x1, y1, x2, y2 = box
    return (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))


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
            if kind in _VEHICLES | {"bicycle", "motor"} and not a.horizontal:
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
        layer = 0.0 if a.atype.kind == "region" else (1.0 if a.atype.kind in _VEHICLES else 2.0)
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
        if kind in _VEHICLES:
            main = self._hsv(int(r.integers(0, 180)), int(r.integers(60, 200)), int(r.integers(35, 95)))
            return Look(main, self._hsv(105, int(r.integers(10, 60)), int(r.integers(205, 245))), skin)
        if kind in ("crowd", "region"):
            return Look((0, 0, 0), (0, 0, 0), skin, self._parts(kind))
        if "distractor" in atype.flags:
            grey = int(r.integers(120, 190))
            return Look((grey, grey, grey), (grey - 40, grey - 40, grey - 40), (grey, grey, grey))
        hue = self.costume_hue + int(r.integers(-8, 9)) if self.spec.similar_looks else int(r.integers(0, 180))
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
        a = _Actor(self.next_tid, atype, 0.0, 0.0, 0.0, 0.0, float(r.uniform(0.85, 1.15)), self.look_for(atype))
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
        lo = self.horizon + (0.5 if a.atype.kind in _VEHICLES else 0.25) * (self.h - self.horizon)
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
        if self.spec.bounce and not at_border:
            a.vy = float(r.normal(0, 0.5 * abs(a.vx)))

    def _place_aerial(self, a: _Actor, at_border: bool) -> None:
        r = self.rng
        kind = a.atype.kind
        speed = 0.0 if a.atype.static else self._speed() * (1.0 if kind in _VEHICLES else 0.35)
        direction = 1.0 if r.random() < 0.5 else -1.0
        if kind in _VEHICLES | {"bicycle", "motor"}:
            a.horizontal = bool(r.random() < 0.75)
        if kind in _VEHICLES and a.horizontal:
            a.y = float(self.lanes_y[int(r.integers(0, len(self.lanes_y)))] + r.normal(0, 0.02 * self.h))
            a.vx, a.x = direction * speed, float(r.uniform(0.05, 0.95) * self.w)
        elif kind in _VEHICLES:
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
        # An actor that was in view and is now wholly outside has exited for good.
        actors = [a for a in actors if not (a.seen and world.outside(world.box_of(a)))]
    lanes = (tuple(map(float, world.lanes_y)), tuple(map(float, world.lanes_x)))
    return Simulation(frames, *lanes) if spec.style == "aerial" else Simulation(frames, (), ())


def _with_visibility(inst: Instance, visibility: float) -> Instance:
    return Instance(inst.tid, inst.category, inst.kind, inst.box, inst.depth, inst.look, inst.flags,
                    inst.horizontal, visibility)


# --- rendering ---------------------------------------------------------------------------------------------
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


def draw_person(img: np.ndarray, box: Sequence[int], look: Look) -> None:
    """A person filling ``box`` exactly: skin-tone head circle, saturated torso, darker legs."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    r = max(min(int(w * 0.3), int(h * 0.12)), 1)
    cx = (x1 + x2 - 1) // 2
    neck = y1 + 2 * r + 1
    hip = y1 + int(round(h * 0.62))
    _rect(img, x1, neck, x2, max(hip, neck + 1), look.main)
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
    elif kind in _VEHICLES:
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
