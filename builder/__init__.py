"""The dataset builder: raw BDD100K / DanceTrack / VisDrone / MOTChallenge sources -> manifest-locked,
frame-budgeted stage builds on disk (``python -m builder``; see README.md and docs/CONTRACTS.md).

Never imports :mod:`train`: training reads builds only through the on-disk contract.
"""
