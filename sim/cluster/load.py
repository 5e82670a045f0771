"""A cluster ready to simulate: the file read and checked, EndpointSlices filled in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import model
from model.cluster import Cluster, EndpointSlice
from sim.cluster.endpointslices import derive_endpoint_slices
from sim.readers.cluster import Progress, load_dump, parse_cluster

__all__ = ["DEMO_SOURCE", "demo_cluster", "load", "with_derived_slices"]

DEMO_SOURCE = "demo_cluster.yaml"
"""How messages name the built-in demo cluster file."""


def load(
    path: str | Path | Sequence[str | Path] | None, *, progress: Progress | None = None
) -> Cluster:
    """The cluster at `path`, slices derived: a file, a directory of files, or several.

    None is the demo cluster. `progress` is told how loading goes (a big dump
    takes seconds).
    """
    if path is None:
        return demo_cluster()
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths:
        return demo_cluster()
    source = os.fspath(paths[0]) if len(paths) == 1 else f"{len(paths)} cluster files"
    return with_derived_slices(load_dump(paths, progress=progress), source)


@cache
def demo_cluster() -> Cluster:
    """The demo cluster kubehop ships (`model/demo_cluster.yaml`)."""
    # model's own folder, not importlib.resources: that import alone costs a
    # tenth of the app's start-up, and kubehop is never installed zipped.
    text = (Path(model.__file__).parent / DEMO_SOURCE).read_text(encoding="utf-8")
    return with_derived_slices(parse_cluster(text, DEMO_SOURCE), DEMO_SOURCE)


def with_derived_slices(cluster: Cluster, source: str) -> Cluster:
    """`cluster` plus the slices the controller would have written, and what they imply."""
    derived = derive_endpoint_slices(cluster)
    if not derived:
        return cluster
    warnings = list(cluster.warnings)
    for slice_ in _unserved(derived):
        warnings.append(
            f"{source}: Service {slice_.namespace}/{slice_.service}: its pods declare none of"
            " its target ports, so kube-proxy has nothing to send its traffic to"
        )
    # A new Cluster, not model_copy: model_copy would carry over the cached
    # lookup indexes of the old one (functools.cached_property lives in __dict__).
    fields = {name: getattr(cluster, name) for name in Cluster.model_fields}
    fields["endpoint_slices"] = cluster.endpoint_slices + derived
    fields["warnings"] = tuple(warnings)
    return Cluster(**fields)


def _unserved(derived: tuple[EndpointSlice, ...]) -> list[EndpointSlice]:
    """One slice per Service whose matched pods resolve none of its ports."""
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for slice_ in derived:
        by_service.setdefault((slice_.namespace, slice_.service), []).append(slice_)
    return [
        slices[0]
        for slices in by_service.values()
        if any(s.endpoints for s in slices) and not any(s.ports and s.endpoints for s in slices)
    ]
