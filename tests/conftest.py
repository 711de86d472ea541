"""Shared test helpers: a `report` fixture whose lines are printed in pytest's terminal summary, and the fixtures
several test files use."""

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


@pytest.fixture
def deterministic_ops_restored():
    """enable_op_determinism() is process-wide: switch it off again for the tests that follow."""
    yield
    from tensorflow.python.framework import config

    config.disable_op_determinism()
