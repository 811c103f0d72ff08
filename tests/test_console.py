"""One console logging setup: every record printed once, Lightning's tips dropped (train/console.py)."""

from __future__ import annotations

import io
import logging

import lightning  # noqa: F401 - attaches Lightning's own console handlers, the cause of double lines

from train.console import quiet_lightning


def test_lightning_records_are_printed_once_and_tips_dropped():
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    lightning_logger = logging.getLogger("lightning.pytorch")
    own = logging.StreamHandler(stream)  # what Lightning does at import when nothing is configured yet
    lightning_logger.addHandler(own)
    lightning_logger.propagate = True
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        quiet_lightning()
        child = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        child.info("GPU available: False, used: False")
        child.info("💡 Tip: For seamless cloud logging, try installing litlogger")
        logging.getLogger("train.stage.app").info("Instantiating trainer")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        lightning_logger.removeHandler(own)
    lines = stream.getvalue().splitlines()
    assert lines == ["GPU available: False, used: False", "Instantiating trainer"]
