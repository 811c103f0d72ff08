"""``python -m train.viz``: the command name of train/review/viz.py (see there)."""

import sys

from train.review.viz import main

if __name__ == "__main__":
    sys.exit(main())
