"""A user's cluster dump as it comes: one file, several files, or a directory of them.

`kubectl get … -o yaml > cluster.yaml` gives one file; people also keep one
file per kind (`nodes.yaml`, `pods.json`) or point at what
`kubectl cluster-info dump --output-directory` writes. Every `.yaml`, `.yml`
and `.json` file under a directory is read (other files, like the pods' logs
that `cluster-info dump` writes, are skipped) and the lot is checked as one
cluster, so a Service in one file finds its pods in another.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from model.cluster import Cluster
from model.errors import ClusterFileError
from sim.readers.cluster_file import Progress, load_cluster_files

__all__ = ["DUMP_SUFFIXES", "dump_files", "load_dump"]

DUMP_SUFFIXES = (".yaml", ".yml", ".json")
"""The files a directory contributes to a cluster."""


def dump_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files `paths` name: files as given, directories expanded in sorted order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in DUMP_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not inside:
                raise ClusterFileError(
                    f"{path}: no .yaml, .yml or .json files in this directory (expected a"
                    " kubectl dump)"
                )
            found.extend(inside)
        else:
            found.append(path)
    return found


def load_dump(
    paths: Sequence[str | os.PathLike[str]], *, progress: Progress | None = None
) -> Cluster:
    """The cluster in the files and directories at `paths`, checked as one."""
    files = dump_files(paths)
    name = os.fspath(paths[0]) if len(paths) == 1 else f"{len(files)} files"
    return load_cluster_files(files, name=name, progress=progress)
