"""``python -m train.compare``: the command name of train/review/compare.py (see there)."""

import sys

from train.review.compare import main

if __name__ == "__main__":
    sys.exit(main())
