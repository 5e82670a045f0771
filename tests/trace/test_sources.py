"""Finding a request's sender: by name or address, and what is said when it names nothing."""

from __future__ import annotations

import pytest

from model.errors import RequestError
from sim.cluster.load import demo_cluster
from sim.trace import request
from sim.trace.request import find_source, parse_source


def test_a_named_pod_is_found_with_its_address() -> None:
    found = find_source(demo_cluster(), " pod1 ")
    assert found is not None
    assert str(found.ip) == "192.168.1.2"
    assert found == parse_source(demo_cluster(), "pod1")


def test_a_name_nothing_has_is_none_without_looking_for_near_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Looking for near names costs seconds on a big cluster; the app's check of the
    # scenarios' pods must not pay it.
    def nearest(word: str, names: object) -> tuple[str, ...]:
        raise AssertionError(f"looked for names near {word!r}")

    monkeypatch.setattr(request, "closest", nearest)
    assert find_source(demo_cluster(), "pod11") is None
    with pytest.raises(AssertionError, match="pod11"):
        parse_source(demo_cluster(), "pod11")


def test_parse_source_says_the_nearest_name() -> None:
    with pytest.raises(RequestError, match=r"source 'pod11': no such pod, node or external"
                       r" client \(did you mean pod1\?\)"):  # fmt: skip
        parse_source(demo_cluster(), "pod11")
