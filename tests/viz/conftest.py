"""Rerun's usage analytics stay off in these tests: the SDK sends none when it logs to a file,
and every Rerun process they start (the ``rerun`` CLI, a deploy subprocess) sees ``CI=1``,
which turns the analytics of Rerun's binaries off. Set here, not for the whole suite: other
tests read ``CI`` to mean a CI machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _rerun_analytics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
