"""`model.frozen.frozen` behaves as `dataclass(frozen=True)` does, class for class."""

from __future__ import annotations

import copy
import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace
from typing import Any, ClassVar

import pytest

from model.frozen import frozen


def _shape(decorate: Any) -> tuple[type[Any], type[Any], type[Any]]:
    """The same three classes, made by `decorate`."""

    class Plain:
        """A frozen class with every kind of field the project uses."""

        name: str
        size: int = 3
        tags: tuple[str, ...] = ()
        seen: frozenset[int] = field(default_factory=frozenset)
        note: str = field(default="", compare=False)
        hidden: int = field(default=0, repr=False)
        loose: int = field(default=0, hash=False)
        derived: str = field(init=False, compare=False, repr=False)
        made: tuple[int, ...] = field(default_factory=tuple, init=False)
        cache: list[int] = field(default_factory=list, compare=False, repr=False)
        LIMIT: ClassVar[int] = 9

        def __post_init__(self) -> None:
            object.__setattr__(self, "derived", self.name * 2)

    class Own:
        value: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    class Empty:
        pass

    return decorate(Plain), decorate(Own), decorate(Empty)


STOCK = _shape(dataclass(frozen=True))
OURS = _shape(frozen)


def _pair(index: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    return STOCK[index](*args, **kwargs), OURS[index](*args, **kwargs)


def test_init_repr_and_the_class_doc() -> None:
    stock, ours = _pair(0, "a", 4, ("x",), frozenset({1}), note="n", hidden=5)
    assert repr(stock) == repr(ours)
    assert vars(stock) == vars(ours)
    assert str(inspect.signature(STOCK[0])) == str(inspect.signature(OURS[0]))
    assert STOCK[0].__doc__ == OURS[0].__doc__
    assert STOCK[2].__doc__ == OURS[2].__doc__
    assert STOCK[0].__match_args__ == OURS[0].__match_args__
    assert STOCK[0].__init__.__qualname__.split(".")[-2:] == ["Plain", "__init__"]
    assert OURS[0].__init__.__qualname__.split(".")[-2:] == ["Plain", "__init__"]
    assert [f.name for f in fields(stock)] == [f.name for f in fields(ours)]
    assert OURS[0]("a").cache is not OURS[0]("a").cache


@pytest.mark.parametrize(
    "args",
    [(), ("a", 1, 2, 3, 4, 5, 6, 7), ("a",), ("a", 1, 2, 3, 4, 5, 6)],
)
def test_wrong_calls_fail_alike(args: tuple[Any, ...]) -> None:
    errors = []
    for cls in (STOCK[0], OURS[0]):
        with pytest.raises(TypeError) as caught:
            cls(*args, derived="no") if len(args) == 7 else cls(*args, bad=1)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_eq_and_hash() -> None:
    a_stock, a_ours = _pair(0, "a", 4, ("x",), note="one", loose=1)
    b_stock, b_ours = _pair(0, "a", 4, ("x",), note="two", loose=2)
    assert (a_stock == b_stock) is (a_ours == b_ours) is False  # loose is compared
    c_stock, c_ours = _pair(0, "a", 4, ("x",), note="three", loose=1)
    assert (a_stock == c_stock) is (a_ours == c_ours) is True  # note is not
    assert hash(a_stock) == hash(a_ours)
    assert a_ours.__eq__(a_stock) is NotImplemented
    assert a_ours != "a"
    assert hash(_pair(2)[0]) == hash(_pair(2)[1])
    assert _pair(2)[1] == OURS[2]()
    with pytest.raises(TypeError):
        hash(OURS[0]("a", tags=[1]))  # unhashable, as with dataclass


def test_own_methods_are_kept() -> None:
    stock, ours = _pair(1, 1)
    assert (repr(stock), stock == 0, hash(stock)) == (repr(ours), ours == 0, hash(ours))


def test_frozen_fields() -> None:
    stock, ours = _pair(0, "a")
    for instance in (stock, ours):
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
            instance.name = "b"
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'other'"):
            instance.other = 1
        with pytest.raises(FrozenInstanceError, match="cannot delete field 'size'"):
            del instance.size


@frozen
class Pickled:
    name: str
    seen: frozenset[int] = frozenset()


def test_replace_copy_and_pickle() -> None:
    ours = OURS[0]("a", seen=frozenset({1}))
    again = replace(ours, size=9)
    assert (again.size, again.derived, again.seen) == (9, "aa", frozenset({1}))
    assert copy.deepcopy(ours) == ours
    assert pickle.loads(pickle.dumps(Pickled("a"))) == Pickled("a")
    with pytest.raises(ValueError):
        replace(ours, derived="x")


def test_a_recursive_repr() -> None:
    ours = OURS[0]("a", tags=[])
    ours.tags.append(ours)
    stock = STOCK[0]("a", tags=[])
    stock.tags.append(stock)
    assert repr(ours) == repr(stock)


def test_subclasses() -> None:
    @frozen
    class Base:
        a: int

    @frozen
    class Derived(Base):
        b: int = 2

    derived = Derived(1)
    assert repr(derived) == "test_subclasses.<locals>.Derived(a=1, b=2)"
    assert derived != Base(1)
    with pytest.raises(FrozenInstanceError):
        derived.a = 3  # type: ignore[misc]


def test_refused() -> None:
    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__"):

        @frozen
        class Settable:
            def __setattr__(self, name: str, value: object) -> None:
                pass

    with pytest.raises(TypeError, match="follows default argument"):

        @frozen
        class Order:
            a: int = 1
            b: int  # type: ignore[misc]
