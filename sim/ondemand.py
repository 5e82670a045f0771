"""A mapping whose entries are made when asked for by name, the rest known from a whole.

A node at Kubernetes' scale limits has 150,000 chains; a packet asks for a few
by name. `OnDemand` answers a lookup with `_find` (which may make and keep the
entry) and every question about all entries (iterating, counting, comparing)
from `_whole`, which a subclass makes when first needed. The dict itself holds
what was made so far, so code that reads it with `dict` methods sees only that.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, overload

__all__ = ["OnDemand"]

V = TypeVar("V")


class OnDemand(dict[str, V]):
    """Entries by name made on demand; everything about all of them from the whole."""

    @abstractmethod
    def _find(self, name: str) -> V | None:
        """The entry `name` (made and kept now if it was not yet), None if there is none."""

    @abstractmethod
    def _whole(self) -> Mapping[str, V]:
        """Every entry."""

    def __getitem__(self, name: str) -> V:
        found = self._find(name)
        if found is None:
            raise KeyError(name)
        return found

    @overload
    def get(self, name: str, default: None = None) -> V | None: ...
    @overload
    def get(self, name: str, default: V) -> V: ...
    @overload
    def get(self, name: str, default: Any) -> Any: ...
    def get(self, name: str, default: Any = None) -> Any:
        """Entry `name`, made now if it was not yet; `default` if there is none."""
        found = self._find(name)
        return default if found is None else found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._whole())

    def keys(self) -> Any:  # the whole's view, not a dict_keys of this dict
        """Every entry's name (from the whole)."""
        return self._whole().keys()

    def values(self) -> Any:
        """Every entry (from the whole)."""
        return self._whole().values()

    def items(self) -> Any:
        """Every (name, entry) (from the whole)."""
        return self._whole().items()

    def __eq__(self, other: object) -> bool:
        return self._whole() == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None
