"""``python -m train.dashboard``: the command name of train/review/dashboard.py (see there)."""

import sys

from train.review.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
