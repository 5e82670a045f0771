"""What is wrong in a cluster's files, told as `file:line: Kind ns/name: field: reason`.

Errors stop the read at once; warnings (things a real cluster may contain that
change what the network does) are kept and rendered at the end, the same
warning for thousands of objects summarised after a few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from model.errors import ClusterFileError
from sim.readers.cluster.documents import Key, Locator
from sim.readers.cluster.quoting import one_line, show

__all__ = ["At", "Noted", "Report"]

# The same warning for thousands of objects would bury the rest: after this
# many of one sort, one summary line stands for the others.
_WARNINGS_PER_SORT = 10


@dataclass(slots=True)
class At:
    """An object being read: where it is, and how a message names it."""

    doc: int
    keys: tuple[Key, ...]
    kind: str
    namespace: object = None
    name: object = None
    file: int = 0

    def ident(self) -> str:
        """How a message names the object: `Kind ns/name`, as far as it is known."""
        kind = self.kind or "object"
        if self.name is None:
            return kind
        if self.namespace is None:
            return f"{kind} {show(self.name)}"
        return f"{kind} {show(self.namespace)}/{show(self.name)}"


@dataclass(slots=True)
class Noted:
    """A warning noted, rendered when the whole cluster is read."""

    sort: str
    at: At | None
    field: tuple[Key, ...]
    reason: str


class Report:
    """The files' names and locators, and the warnings found so far in them."""

    def __init__(self, name: str) -> None:
        # `name` stands for all the files in messages about none in particular.
        self.name = name
        # Every file's name and locator, indexed by `At.file`.
        self.places: list[tuple[str, Locator]] = []
        self.noted: list[Noted] = []
        """The warnings so far, in the order they are rendered; a reader that checks kinds
        interleaved puts each kind's in a list of its own here, then joins them."""
        self.unsaid = False
        """Fail without saying where: the reader will read the files again, the usual way,
        to tell the mistake (finding a line in a streamed file means reading it whole)."""

    def fail(self, at: At | None, field: tuple[Key, ...], reason: str) -> NoReturn:
        """Stop reading: `field` of the object `at` is wrong for `reason`."""
        if self.unsaid:
            raise ClusterFileError(reason)
        raise ClusterFileError(one_line(self.where(at, field, reason)))

    def warn(self, sort: str, at: At | None, field: tuple[Key, ...], reason: str) -> None:
        """Note a warning; `sort` groups like ones for the summary."""
        self.noted.append(Noted(sort, at, field, reason))

    def where(self, at: At | None, field: tuple[Key, ...], reason: str) -> str:
        """The message for `reason`, led by the file, line, object and field it is about."""
        if at is None:
            return f"{self.name}: {reason}"
        source, locator = self.places[at.file]
        line = locator.line(at.doc, at.keys + field)
        if not at.kind and at.name is None:
            if field:
                return f"{source}:{line}: {_dotted(field)}: {reason}"
            return f"{source}:{line}: {reason}"
        if not field:
            return f"{source}:{line}: {at.ident()}: {reason}"
        return f"{source}:{line}: {at.ident()}: {_dotted(field)}: {reason}"

    def line_ref(self, first: At, at: At, *, name: bool = True) -> str:
        """`line 12`, or `other.yaml:12` when `first` is in another file than `at`."""
        source, locator = self.places[first.file]
        keys = (*first.keys, "metadata", "name") if name else first.keys
        line = locator.line(first.doc, keys)
        return f"line {line}" if first.file == at.file else f"{source}:{line}"

    def rendered_warnings(self) -> tuple[str, ...]:
        """Every warning as a message, each sort cut short after a few."""
        told: list[Noted] = []
        counts: dict[str, int] = {}
        for warning in self.noted:
            counts[warning.sort] = counts.get(warning.sort, 0) + 1
            if counts[warning.sort] <= _WARNINGS_PER_SORT:
                told.append(warning)
        # A streamed file is read again once for all the lines asked of it.
        asked: dict[int, list[tuple[Key, ...]]] = {}
        for warning in told:
            if warning.at is not None:
                asked.setdefault(warning.at.file, []).append(warning.at.keys + warning.field)
        for file, keys in asked.items():
            self.places[file][1].prepare(keys)
        shown = [one_line(self.where(w.at, w.field, w.reason)) for w in told]
        for sort, count in counts.items():
            if count > _WARNINGS_PER_SORT:
                shown.append(f"{self.name}: … and {count - _WARNINGS_PER_SORT} more {sort}")
        return tuple(shown)


def _dotted(keys: tuple[Key, ...]) -> str:
    """("spec", "ports", 0, "port") → spec.ports[0].port."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out
