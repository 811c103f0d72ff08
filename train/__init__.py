"""Stage training over builds, the tracker, evaluation, the regression gate and review tools (docs/ARCHITECTURE.md)."""
