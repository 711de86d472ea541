"""Shared test helpers: only a `report` fixture whose lines are printed in pytest's terminal summary."""

from __future__ import annotations

import pytest

_REPORT = pytest.StashKey[list]()


@pytest.fixture
def report(request) -> list:
    """Append lines here (e.g. how many fuzz cases ran); they are shown at the end of the run."""
    return request.config.stash.setdefault(_REPORT, [])


def pytest_terminal_summary(terminalreporter, config):
    for line in config.stash.get(_REPORT, []):
        terminalreporter.write_line(line)
