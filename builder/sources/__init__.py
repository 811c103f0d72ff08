"""Source adapters: one per raw dataset format, registered by name (see docs/CONTRACTS.md)."""
