"""A user's files as text: one file, several, or a directory of a dump, each read safely.

`kubectl get … -o yaml > cluster.yaml` gives one file; people also keep one
file per kind (`nodes.yaml`, `pods.json`) or point at what
`kubectl cluster-info dump --output-directory` writes. Every `.yaml`, `.yml`
and `.json` file under a directory is read (other files, like the pods' logs
that `cluster-info dump` writes, are skipped); the caller checks the lot as
one cluster, so a Service in one file finds its pods in another.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from model.errors import ClusterFileError, KubehopError
from sim.readers.cluster.quoting import show

__all__ = ["DUMP_SUFFIXES", "dump_files", "read_text"]

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


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str = "a cluster file",
    error: type[KubehopError] = ClusterFileError,
    ask_what: bool = False,
) -> str:
    """A user's file as text, or one line naming the file and what is wrong with it.

    With `ask_what`, a file that is not text is answered with a question
    ("is this `iptables-save` output?"): people pass the wrong dump more often
    than a mis-encoded one.
    """
    name = show(os.fspath(path))
    try:
        # A pipe (`--cluster <(kubectl get … -o yaml)`) is read; a device such
        # as /dev/zero would never end.
        if stat.S_ISCHR(mode := os.stat(path).st_mode) or stat.S_ISBLK(mode):
            raise error(f"{name}: is a device, not {what}")
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not {what}") from None
    except PermissionError:
        raise error(f"{name}: permission denied") from None
    except OSError as err:
        raise error(f"{name}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        if ask_what:
            raise error(f"{name}:{line}: not text (is this {what}?)") from None
        raise error(
            f"{name}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        ) from None
