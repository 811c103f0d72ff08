"""Stage training, tracking, evaluation, the regression gate and the reports (``python -m train stage=N``;
see README.md and docs/CONTRACTS.md). Reads builds only through the on-disk contract."""
