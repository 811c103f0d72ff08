"""What the synthetic scenes are made of: actor types, scene specs, per-frame instances and each source's scene.

A scene is a fixed background plus *actors* (people, vehicles, two-wheelers, crowds, clutter patches) that
move with constant velocity plus Gaussian noise, enter and leave through the image borders, cross each other
and occlude each other (drawn far to near; see :mod:`builder.synth.motion`). Each frame yields
:class:`Instance` records: the actor's tight box (the extents of what is drawn), its depth, visibility and
look, from which :mod:`builder.synth.writers` writes the label files of each official format.
:func:`scene_spec` describes the scene of each source (what moves, how fast, how it looks).

Coordinates: pixels, origin at the top-left corner, boxes as integer pixel edges ``(x1, y1, x2, y2)`` with
``x2 = x1 + width``: the box covers columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``. Boxes here are NOT
clipped to the frame; :func:`clip_box` does that. Colours are BGR ``uint8`` triples (OpenCV order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from builder.errors import NotRegisteredError
from builder.synth.scales import SOURCES

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
#: Kinds drawn as vehicles (side view on the ground, top view from the air).
VEHICLES = frozenset({"car", "van", "truck", "bus"})


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
        costumes: DanceTrack-like dancers (:mod:`builder.synth.dance`): one size and one speed for all, each in
            its own costume (hue x torso texture), so only appearance tells two of them apart.
        bump_prob: probability that two dancers meeting head-on both turn back instead of passing.
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
    costumes: bool = False
    bump_prob: float = 0.0
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
    clutter patches, and is empty otherwise. ``pattern`` is a person's torso texture (index into
    :data:`builder.synth.dance.PATTERNS`: 0 plain, 1 horizontal stripes, 2 vertical stripes, 3 checks) drawn in
    ``accent`` over ``main``.
    """

    main: tuple[int, int, int]
    second: tuple[int, int, int]
    skin: tuple[int, int, int]
    parts: tuple[tuple[float, ...], ...] = ()
    pattern: int = 0
    accent: tuple[int, int, int] = (0, 0, 0)


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
            (filled by :func:`~builder.synth.motion.simulate`).
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


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Clip an xyxy pixel box to the frame ``[0, width] x [0, height]``; the result may be empty."""
    x1, y1, x2, y2 = box
    return (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))


def scene_spec(source: str, objects: tuple[int, int]) -> SceneSpec:
    """The scene description of ``source`` (what moves, how fast, how it looks) with ``objects`` per frame."""
    crowd = frozenset({"crowd"})
    if source == "bdd100k":
        types = (ActorType("pedestrian", "person", 4.0), ActorType("car", "car", 4.0),
                 ActorType("truck", "truck", 0.8), ActorType("bus", "bus", 0.6),
                 ActorType("bicycle", "bicycle", 0.5), ActorType("motorcycle", "motor", 0.5))
        extras = ((ActorType("pedestrian", "crowd", 1.0, static=True, flags=crowd), 0.5),
                  (ActorType("bus", "bus", 1.0), 0.4))
        return SceneSpec("street", types, objects, speed=0.03, rider_prob=0.8, extras=extras)
    if source == "dancetrack":
        dancers = (objects[0] + 1, objects[1] + 1)
        return SceneSpec("stage", (ActorType("1", "person", 1.0),), dancers, speed=0.012, enter_prob=0.15,
                         costumes=True, bump_prob=0.7, bounce=True)
    if source == "visdrone":
        score0 = frozenset({"score0"})
        types = (ActorType("1", "person", 3.0), ActorType("3", "bicycle", 0.5), ActorType("4", "car", 5.0),
                 ActorType("5", "van", 1.2), ActorType("6", "truck", 0.8), ActorType("9", "bus", 0.5),
                 ActorType("10", "motor", 0.8))
        extras = ((ActorType("0", "region", 1.0, static=True), 0.7),
                  (ActorType("2", "sitting", 1.0, static=True), 0.6),
                  (ActorType("2", "sitting", 1.0, static=True), 0.4),
                  (ActorType("4", "car", 1.0, flags=score0), 0.5))
        return SceneSpec("aerial", types, (objects[0] + 2, objects[1] + 4), speed=0.012, extras=extras)
    if source == "mot17":
        types = (ActorType("1", "person", 6.0), ActorType("3", "car", 1.0))
        extras = ((ActorType("7", "person", 1.0, static=True), 0.7),
                  (ActorType("8", "person", 1.0, static=True, flags=frozenset({"distractor"})), 0.6),
                  (ActorType("3", "car", 1.0, static=True), 0.5))
        return SceneSpec("street", types, objects, speed=0.012, extras=extras)
    raise NotRegisteredError.of("synth source", source, SOURCES)
