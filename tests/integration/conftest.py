"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.alert_scenario import PASSWORD
from tests.peers.smtp_server import SmtpServer, start_smtp


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd with STARTTLS and required AUTH (user USER, password PASSWORD)."""
    (tmp_path / "smtp").mkdir()
    server = start_smtp(tmp_path / "smtp", PASSWORD)
    yield server
    server.stop()
