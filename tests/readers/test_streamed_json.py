"""A JSON file read item by item says exactly what the same text read whole says.

`load_cluster_file` streams a JSON List (issue 14: a 209 MB dump must not
live in memory as one tree); `parse_cluster` of its text reads it whole. Both
must give the same cluster, the same warnings in the same order, or the same
first mistake, whatever the file holds and wherever its chunks are cut.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim.readers.cluster.load as cluster_load
import sim.readers.cluster.stream as stream
from model.cluster import Cluster
from model.errors import ClusterFileError
from sim.readers.cluster import load_cluster_file, load_cluster_files, load_dump, parse_cluster
from sim.readers.cluster.files import dump_files
from tests import paths

DEMO_ITEMS: list[Any] = [d for d in yaml.safe_load_all(paths.DEMO.read_text()) if d]


def _outcome(read: Any) -> Cluster | str:
    try:
        cluster: Cluster = read()
    except ClusterFileError as err:
        return f"error: {err}"
    return cluster


def _both(path: Path) -> tuple[Cluster | str, Cluster | str]:
    """(streamed, read whole) for the file at `path`."""
    text = path.read_text(encoding="utf-8-sig")
    return _outcome(lambda: load_cluster_file(path)), _outcome(
        lambda: parse_cluster(text, str(path))
    )


def _same(streamed: Cluster | str, whole: Cluster | str) -> None:
    assert streamed == whole
    if isinstance(streamed, Cluster) and isinstance(whole, Cluster):
        assert streamed.warnings == whole.warnings


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks cut through names, numbers and items alike.
    monkeypatch.setattr(stream, "CHUNK", 7)


@pytest.fixture
def whole_never(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the loader falls back to reading a file whole."""

    def refused(*args: object, **kwargs: object) -> Cluster:
        raise AssertionError("read whole, not item by item")

    monkeypatch.setattr(cluster_load, "parse_clusters", refused)


def _write(tmp: Path, document: Any, indent: int | None = 2) -> Path:
    path = tmp / "cluster.json"
    path.write_text(json.dumps(document, indent=indent), encoding="utf-8")
    return path


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "v1", "kind": "List", "items": DEMO_ITEMS},
        # kubectl writes the List's kind after its items.
        {"apiVersion": "v1", "items": DEMO_ITEMS, "kind": "List", "metadata": {}},
        # Pods before the nodes they run on wait for them, and keep their place.
        {"kind": "List", "items": DEMO_ITEMS[::-1]},
    ],
    ids=["list", "kubectl order", "pods before nodes"],
)
def test_the_demo_streams_to_the_cluster_read_whole(
    tmp_path: Path, whole_never: None, document: Any
) -> None:
    path = _write(tmp_path, document)
    streamed = load_cluster_file(path)
    whole = cluster_load._cluster(
        [(path.read_text(), str(path))], cluster_load.Report(str(path)), progress=None
    )
    _same(streamed, whole)
    assert [p.name for p in streamed.pods] == [p.name for p in whole.pods]


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize(
    "path",
    sorted(p for p in paths.DATA.rglob("*.json") if "lab" not in p.parts),
    ids=lambda p: str(p.relative_to(paths.DATA)),
)
def test_dumps_stream_as_they_read_whole(path: Path) -> None:
    _same(*_both(path))


def test_a_directory_of_dumps_streams_as_it_reads_whole(small_chunks: None) -> None:
    directory = paths.DATA / "real" / "cluster-info-dump"
    files = dump_files([directory])
    streamed = load_dump([directory])
    whole = cluster_load.parse_clusters(
        [(f.read_text(), str(f)) for f in files], name=str(directory)
    )
    _same(streamed, whole)
    assert streamed.pods


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_warnings_lines_come_from_their_items_alone(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A streamed file is not read whole again to say the lines of its warnings."""
    path = paths.DATA / "real" / "kind.json"
    whole = parse_cluster(path.read_text(), str(path))

    def refused(*args: object, **kwargs: object) -> str:
        raise AssertionError("read whole to find a line")

    monkeypatch.setattr(stream, "CHUNK", chunk)
    monkeypatch.setattr(stream, "read_text", refused)
    streamed = load_cluster_file(path)
    assert streamed.warnings == whole.warnings
    assert any(":3613: ConfigMap kube-system/kube-proxy" in w for w in streamed.warnings)


def test_a_missing_file_beside_a_streamed_one_is_named(tmp_path: Path) -> None:
    streamed = tmp_path / "c.json"
    streamed.write_text(json.dumps({"kind": "List", "items": DEMO_ITEMS}))
    with pytest.raises(ClusterFileError, match=r"missing\.yaml: no such file$"):
        load_cluster_files([streamed, tmp_path / "missing.yaml"])


def test_checked_models_are_what_validation_makes() -> None:
    """The loader builds models without validating them again; validating gives the same."""
    cluster = load_cluster_file(paths.DATA / "real" / "kind.json")
    assert Cluster.model_validate_json(cluster.model_dump_json()) == cluster


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kind": "List", "items": [{"kind": "Pod"}', "not valid JSON"),
        ('{"kind": "List", "items": []} {}', "not valid JSON"),
        ('{"kind": "Pod", "items": []}', "metadata.name: required"),
        ('{"items": [{"apiVersion": "v1", "metadata": {"name": "a"}}]}', "kind: required"),
    ],
)
def test_what_does_not_stream_is_read_whole(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    streamed, whole = _both(path)
    assert streamed == whole
    assert message in str(streamed)


_ITEM_PATHS = [
    (index, *keys)
    for index, item in enumerate(DEMO_ITEMS)
    for keys in [(), ("metadata",), ("metadata", "name"), ("spec",), ("status",), ("kind",)]
    if not keys or keys[0] in item
]
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=12),
    st.sampled_from(["10.0.0.1", "node-a", "Pod", "List", "PodList", "v1beta1", "10.96.0.10"]),
    st.just([]),
    st.just({}),
)


def _replace(item: Any, keys: tuple[Any, ...], value: Any) -> Any:
    if not keys:
        return value
    if not isinstance(item, dict):
        return item
    return {k: (_replace(v, keys[1:], value) if k == keys[0] else v) for k, v in item.items()}


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(st.tuples(st.sampled_from(_ITEM_PATHS), _values), max_size=3),
    order=st.permutations(range(len(DEMO_ITEMS))),
    kind_first=st.booleans(),
    indent=st.sampled_from([None, 1]),
    chunk=st.sampled_from([1, 5, 64, 1 << 20]),
)
def test_any_changed_list_streams_as_it_reads_whole(
    changes: list[tuple[tuple[Any, ...], Any]],
    order: list[int],
    kind_first: bool,
    indent: int | None,
    chunk: int,
) -> None:
    items = list(DEMO_ITEMS)
    for (index, *keys), value in changes:
        items[index] = _replace(items[index], tuple(keys), value)
    items = [items[i] for i in order]
    document = {"kind": "List", "items": items} if kind_first else {"items": items, "kind": "List"}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream, "CHUNK", chunk)
        _same(*_both(_write(Path(tmp), document, indent)))
