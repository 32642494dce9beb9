"""Parsers of Wi-Fi scan output, one module per command; shared types live in ``base``."""
