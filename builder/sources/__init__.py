"""Source adapters: one per raw dataset format, registered by name (see docs/CONTRACTS.md).

Usage::

    from builder.classmap import ClassMap, default_classmap_path
    from builder.records import WarningCounter
    from builder.sources import get_source

    classmap = ClassMap.load(default_classmap_path("mot17"), ["person", "vehicle"])
    adapter = get_source("mot17")("data/raw/mot17", classmap, WarningCounter())
    for seq in adapter.sequences("train"):
        print(seq.name, seq.num_frames)

Importing this package registers the built-in adapters (``bdd100k``, ``dancetrack``, ``mot17``,
``visdrone``) and nothing else; a new adapter decorates its class with ``@register("name")``.
"""

from builder.sources import bdd100k, motchallenge, visdrone  # noqa: F401 - registers the built-in adapters
from builder.sources.base import SOURCES, SourceAdapter, get_source, register
from builder.sources.images import missing_images

__all__ = ["SOURCES", "SourceAdapter", "get_source", "missing_images", "register"]
