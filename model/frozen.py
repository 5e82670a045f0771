"""`@frozen`: `@dataclass(frozen=True)` for a class defined before the app's first screen.

Python 3.11's `dataclass` compiles six methods from source text for each frozen
class it makes (`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`,
`__delattr__`), at every start, never cached: some 5 M instructions a class, a
quarter of what the app's start-up spends above a bare Textual app. `@frozen`
compiles only `__init__` (the one method whose signature matters and that runs
often); the other five are closures over the class's fields, made by functions
compiled once into this module's bytecode, and behave as `dataclass`'s do:

- `__eq__` compares the fields with `compare=True` as one tuple, for instances of
  the same class only (NotImplemented otherwise);
- `__hash__` hashes the same tuple as `dataclass` (the fields with `compare=True`,
  or `hash=True`), so sets and dicts of them iterate in the same order;
- `__repr__` is `Name(field=value, …)` over the fields with `repr=True`, `...` when
  an instance contains itself;
- assigning or deleting a field raises `dataclasses.FrozenInstanceError`.

A method the class defines itself is kept, as `dataclass` keeps it. Everything
else (`fields()`, `replace()`, `__match_args__`, defaults, `default_factory`,
`field(init=False)`, `__post_init__`) is `dataclass`'s own, which this calls with
only `__init__` and the five methods left out. Its `__dataclass_params__` says so
(`init`, `repr` and `eq` False, `frozen` False): a stock frozen dataclass may not
subclass a `@frozen` class (its base would look mutable), nor the other way round.
Not supported: `InitVar` (refused by `__init__`), keyword-only fields and `__slots__`
(refused here).
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError
from operator import attrgetter
from typing import Any, TypeVar, cast, dataclass_transform

__all__ = ["frozen"]

_T = TypeVar("_T")


class _Factory:
    """The default of a parameter whose field has a `default_factory` (shown in help)."""

    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _Factory()


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of `names`' values of an instance, as `dataclass` compares and hashes it."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return lambda self: ()


def _eq(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


def _setattr(cls: type[Any], names: tuple[str, ...]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _delattr(cls: type[Any], names: tuple[str, ...]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _init(cls: type, fields: tuple[Field[Any], ...], module: dict[str, Any]) -> Callable[..., None]:
    """`dataclass`'s `__init__` for a frozen class: the one method compiled from text."""
    self_name = "__dataclass_self__" if any(f.name == "self" for f in fields) else "self"
    names: dict[str, Any] = {
        "__dataclass_builtins_object__": object,
        "_HAS_DEFAULT_FACTORY": _HAS_FACTORY,
        "_return_type": None,
    }
    params = [self_name]
    body = []
    defaulted = False
    for f in fields:
        if f.init:
            if f.default is not MISSING or f.default_factory is not MISSING:
                defaulted = True
            elif defaulted:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")

        names[f"_type_{f.name}"] = f.type
        default = f"_dflt_{f.name}"
        if f.default_factory is not MISSING:
            names[default] = f.default_factory
            if f.init:
                params.append(f"{f.name}:_type_{f.name}=_HAS_DEFAULT_FACTORY")
                value = f"{default}() if {f.name} is _HAS_DEFAULT_FACTORY else {f.name}"
            else:
                value = f"{default}()"
        elif f.init:
            if f.default is MISSING:
                params.append(f"{f.name}:_type_{f.name}")
            else:
                names[default] = f.default
                params.append(f"{f.name}:_type_{f.name}={default}")
            value = f.name
        else:
            continue  # read from the class attribute holding its default, as dataclass does
        body.append(f"__dataclass_builtins_object__.__setattr__({self_name},{f.name!r},{value})")
    if hasattr(cls, "__post_init__"):
        body.append(f"{self_name}.__post_init__()")
    lines = "\n".join(f"  {line}" for line in body or ["pass"])
    text = (
        f"def __create_fn__({', '.join(names)}):\n"
        f" def __init__({','.join(params)})->_return_type:\n{lines}\n"
        " return __init__"
    )
    made: dict[str, Any] = {}
    # Not under this module's `from __future__ import annotations`, as dataclass's is not.
    exec(compile(text, "<string>", "exec", dont_inherit=True), module, made)
    init: Callable[..., None] = made["__create_fn__"](**names)
    return init


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, Field))
def frozen(cls: type[_T]) -> type[_T]:
    """`cls` as `@dataclass(frozen=True)` makes it, its methods cheaper to define."""
    own = cls.__dict__
    for name in ("__setattr__", "__delattr__"):
        if name in own:
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
    if "__slots__" in own:
        raise TypeError(f"@frozen does not support __slots__ ({cls.__name__})")
    undocumented = not own.get("__doc__")
    class_hash = own.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in own))
    dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cast(Any, cls))
    if any(f.kw_only for f in fields):
        raise TypeError(f"@frozen does not support keyword-only fields ({cls.__name__})")
    everything = tuple(f.name for f in fields)
    compared = tuple(f.name for f in fields if f.compare)
    hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    module = sys.modules[cls.__module__].__dict__ if cls.__module__ in sys.modules else {}
    made: dict[str, Any] = {
        "__init__": _init(cls, fields, module),
        "__repr__": _repr(tuple(f.name for f in fields if f.repr)),
        "__eq__": _eq(_key(compared)),
        "__setattr__": _setattr(cls, everything),
        "__delattr__": _delattr(cls, everything),
    }
    for name, method in made.items():
        if name in ("__setattr__", "__delattr__") or name not in own:
            method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
            setattr(cls, name, method)
    if not explicit_hash:
        method = _hash(_key(hashed))
        method.__qualname__ = f"{cls.__qualname__}.__hash__"
        cls.__hash__ = method  # type: ignore[method-assign,assignment]
    if undocumented:
        text_sig = str(inspect.signature(cls)).replace(" -> None", "")
        cls.__doc__ = cls.__name__ + text_sig
    return cls
