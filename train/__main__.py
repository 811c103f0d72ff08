"""``python -m train stage=N [overrides]``: train one curriculum stage (see train/stage/command.py)."""

from train.stage.command import main

if __name__ == "__main__":
    main()
