"""A cluster ready to simulate: the file read and checked, EndpointSlices filled in.

The demo cluster ships twice: `model/demo_cluster.yaml`, which reads as a
tutorial, and `model/demo_cluster.json`, the cluster the YAML makes (checked,
slices derived) as `model` serialises it. The app opens on the JSON: that needs
neither YAML nor the readers, a fifth of kubehop's start-up. `python -m
sim.cluster.load` writes it again after the YAML changes (a test says when).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import model
from model.cluster import Cluster, CNIPlugin, EndpointSlice, ProxyMode
from model.errors import ClusterFileError

if TYPE_CHECKING:
    from sim.readers.cluster import Progress

__all__ = [
    "DEMO_JSON",
    "DEMO_SOURCE",
    "SIMULATED_MODES",
    "demo_cluster",
    "demo_cluster_from_yaml",
    "load",
    "with_cni",
    "with_dataplane",
    "with_derived_slices",
    "with_mode",
]

DEMO_SOURCE = "demo_cluster.yaml"
"""How messages name the built-in demo cluster file."""

DEMO_JSON = Path(model.__file__).parent / "demo_cluster.json"
"""The demo cluster as loaded from `DEMO_SOURCE`, serialised (what the app opens on)."""


def load(
    path: str | Path | Sequence[str | Path] | None,
    *,
    progress: Progress | None = None,
    cni: str | None = None,
    mode: str | None = None,
) -> Cluster:
    """The cluster at `path`, slices derived: a file, a directory of files, or several.

    None is the demo cluster. `progress` is told how loading goes (a big dump
    takes seconds). `cni` and `mode` run another CNI or kube-proxy mode than the
    file's (`with_dataplane`); what traces look up is indexed for those.
    """
    if path is None:
        return with_dataplane(demo_cluster(), cni=cni, mode=mode)
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths:
        return with_dataplane(demo_cluster(), cni=cni, mode=mode)
    source = os.fspath(paths[0]) if len(paths) == 1 else f"{len(paths)} cluster files"
    from sim.cluster.indexes import prepare
    from sim.readers.cluster import load_dump

    cluster = with_derived_slices(load_dump(paths, progress=progress), source)
    if cni or mode:
        cluster = _rewired(cluster, cni, mode)
    stage = "indexing Services and pods"
    if progress is not None:
        progress(stage, 0, 1)
    prepare(cluster)
    if progress is not None:
        progress(stage, 1, 1)
    return cluster


@cache
def demo_cluster() -> Cluster:
    """The demo cluster kubehop ships (`model/demo_cluster.yaml`, read from its JSON copy)."""
    # model's own folder, not importlib.resources: that import alone costs a
    # tenth of the app's start-up, and kubehop is never installed zipped.
    return Cluster.model_validate_json(DEMO_JSON.read_bytes())


def demo_cluster_from_yaml() -> Cluster:
    """The demo cluster read from `model/demo_cluster.yaml` itself, through the readers."""
    from sim.readers.cluster import parse_cluster

    text = (Path(model.__file__).parent / DEMO_SOURCE).read_text(encoding="utf-8")
    return with_derived_slices(parse_cluster(text, DEMO_SOURCE), DEMO_SOURCE)


def demo_json() -> str:
    """What `DEMO_JSON` must hold: the YAML's cluster, serialised."""
    return demo_cluster_from_yaml().model_dump_json(indent=1) + "\n"


def with_derived_slices(cluster: Cluster, source: str) -> Cluster:
    """`cluster` plus the slices the controller would have written, and what they imply."""
    from sim.cluster.endpointslices import derive_endpoint_slices

    derived = derive_endpoint_slices(cluster)
    if not derived:
        return cluster
    warnings = list(cluster.warnings)
    for slice_ in _unserved(derived):
        warnings.append(
            f"{source}: Service {slice_.namespace}/{slice_.service}: its pods declare none of"
            " its target ports, so kube-proxy has nothing to send its traffic to"
        )
    # model_copy would carry over the cached lookup indexes of the old one
    # (functools.cached_property lives in __dict__).
    return _replaced(
        cluster, endpoint_slices=cluster.endpoint_slices + derived, warnings=tuple(warnings)
    )


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


def with_cni(cluster: Cluster, plugin: str) -> Cluster:
    """`cluster` wired by another CNI (`kubehop --cni NAME`), everything else as it was."""
    try:
        chosen = CNIPlugin(plugin)
    except ValueError:
        names = ", ".join(p.value for p in CNIPlugin)
        raise ClusterFileError(f"--cni {plugin!r}: kubehop simulates {names}") from None
    return _replaced(
        cluster, cni=cluster.cni.model_copy(update={"plugin": chosen, "inferred": False})
    )


SIMULATED_MODES = (ProxyMode.IPTABLES, ProxyMode.NFTABLES, ProxyMode.IPVS)
"""The kube-proxy modes `--mode` switches to."""


def with_mode(cluster: Cluster, mode: str) -> Cluster:
    """`cluster` with kube-proxy in another mode (`kubehop --mode NAME`), its other settings
    kept (kube-proxy reads the mark bit from each mode's own section; kubehop keeps one)."""
    names = ", ".join(m.value for m in SIMULATED_MODES)
    try:
        chosen = ProxyMode(mode)
    except ValueError:
        raise ClusterFileError(f"--mode {mode!r}: kubehop simulates {names}") from None
    if chosen not in SIMULATED_MODES:
        raise ClusterFileError(f"--mode {mode!r} is not simulated yet (kubehop simulates {names})")
    if chosen is cluster.kube_proxy.mode:
        return cluster
    proxy = cluster.kube_proxy.model_copy(update={"mode": chosen, "inferred": False})
    return _replaced(cluster, kube_proxy=proxy)


def with_dataplane(cluster: Cluster, *, cni: str | None = None, mode: str | None = None) -> Cluster:
    """`cluster` with the CNI and kube-proxy mode the command line chose, where it chose."""
    if not cni and not mode:
        return cluster
    from sim.cluster.indexes import prepare

    return prepare(_rewired(cluster, cni, mode))


def _rewired(cluster: Cluster, cni: str | None, mode: str | None) -> Cluster:
    if cni:
        cluster = with_cni(cluster, cni)
    if mode:
        cluster = with_mode(cluster, mode)
    return cluster


def _replaced(cluster: Cluster, **changes: Any) -> Cluster:
    # A new Cluster, not model_copy: only the lookup indexes of fields left as they
    # were carry over (a big cluster's pods take a tenth of a second to index again).
    fields = {name: getattr(cluster, name) for name in Cluster.model_fields}
    fields.update(changes)
    replaced = Cluster(**fields)
    replaced.indexes_from(cluster, changes)
    return replaced


if __name__ == "__main__":
    DEMO_JSON.write_text(demo_json(), encoding="utf-8")
    print(f"wrote {DEMO_JSON}")
