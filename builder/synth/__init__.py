"""Synthetic sources: tiny raw datasets in the exact official layouts, the project's embedded default data.

Modules: :mod:`~builder.synth.scales` (scales, split plans, sequence names), :mod:`~builder.synth.scene`
(actor types, scene specs, instances), :mod:`~builder.synth.motion` (the simulated world),
:mod:`~builder.synth.draw` (OpenCV rendering) and :mod:`~builder.synth.writers` (the official layouts,
:func:`write_synth`). Run: ``python -m builder synth data/synth --scale demo`` (builder/cli.py).
"""

from builder.synth.scales import (
    DANCETRACK_SPLITS,
    SCALES,
    SOURCES,
    SplitPlan,
    SynthScale,
    get_scale,
    sequence_names,
)
from builder.synth.writers import write_synth

__all__ = [
    "DANCETRACK_SPLITS",
    "SCALES",
    "SOURCES",
    "SplitPlan",
    "SynthScale",
    "get_scale",
    "sequence_names",
    "write_synth",
]
