"""The regression gate: what a stage gained and what it forgot on the locked val sets."""
