"""Review tools over run directories: ranking runs (compare), the dashboard, ground truth vs tracks videos (viz)."""
