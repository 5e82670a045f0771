"""Markers by layer: the app, the lab and the lint run are slow; `-m "not slow"` skips them.

CI runs everything (`.ci/run` runs plain `pytest`); the marker is for a quick
loop while working on the core: `pytest -m "not slow"`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_SLOW_PLACES = ("app", "lab", "test_lint.py")
"""Folders and files under tests/ whose every test is slow (a Textual pilot, real
namespaces, mypy over the project)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        place = Path(item.path).relative_to(tests).parts[0]
        if place in _SLOW_PLACES or item.get_closest_marker("lab") is not None:
            item.add_marker(pytest.mark.slow)
