"""One module per dashboard, each with ``dashboard() -> Dashboard``."""
