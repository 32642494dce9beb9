"""Speed test: LibreSpeed-compatible server and client."""
