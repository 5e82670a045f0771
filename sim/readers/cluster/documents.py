"""A cluster file's text as documents (YAML or JSON), with a way back to their lines.

Parsing keeps no line numbers (the C parsers are fast because they don't); a
`Locator` finds the line of a path by reading the text again, only when a
message needs one.
"""

from __future__ import annotations

import json
import re
import sys
from abc import ABC, abstractmethod
from bisect import bisect_right
from typing import Any

import yaml

from model.errors import ClusterFileError
from sim.readers.cluster.quoting import one_line

__all__ = ["JsonLocator", "Key", "Locator", "YamlLoader", "YamlLocator", "parse_documents"]

# libyaml's C parser is about ten times faster than the pure-Python one.
_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Key = str | int
"""One step of a path into a document: a mapping key or a list index."""


class YamlLoader(_FastLoader):  # type: ignore[valid-type,misc]
    """Safe YAML that refuses a key given twice in one mapping, as kubectl does.

    PyYAML keeps the last value and drops the first without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping at `node`, or a ConstructorError at a key's second appearance."""
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str"):
                first = seen.setdefault(key_node.value, key_node)
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key_node.value!r} appears twice in one mapping"
                        f" (first at line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def parse_documents(text: str, source: str, *, alone: bool) -> tuple[list[Any], Locator]:
    """The documents in `text` and a locator for them; `alone` if no other file comes with it.

    A file that is one of several may be empty; a file given alone may not.
    """
    stripped = text.lstrip()
    if not stripped and not alone:
        return [], YamlLocator(text)
    if not stripped:
        raise ClusterFileError(
            f"{source}: file is empty (expected Kubernetes objects in YAML or JSON)"
        )
    json_error: json.JSONDecodeError | None = None
    if stripped[0] in "{[":
        # The fast path: JSON (what generators and `kubectl -o json` write).
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError as err:
            json_error = err
        except RecursionError:
            raise ClusterFileError(f"{source}: nested too deeply to read") from None
        except ValueError:  # an integer of more digits than Python converts
            raise _too_long(text, source) from None
        else:
            return docs, JsonLocator(text)
    try:
        return list(yaml.load_all(text, Loader=YamlLoader)), YamlLocator(text)
    except yaml.MarkedYAMLError as err:
        if json_error is not None:
            raise ClusterFileError(
                one_line(
                    f"{source}:{json_error.lineno}: not valid JSON:"
                    f" {json_error.msg} (column {json_error.colno})"
                )
            ) from None
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = err.problem or err.context or "unreadable"
        raise ClusterFileError(one_line(f"{source}{line}: not valid YAML: {problem}")) from None
    except yaml.YAMLError as err:
        raise ClusterFileError(one_line(f"{source}: not valid YAML: {err}")) from None
    except RecursionError:
        raise ClusterFileError(f"{source}: nested too deeply to read") from None
    except ValueError:
        raise _too_long(text, source) from None


def _too_long(text: str, source: str) -> ClusterFileError:
    # Python refuses to turn a string of over 4300 digits into an int
    # (sys.get_int_max_str_digits); no Kubernetes field holds one.
    found = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
    line = f":{text.count(chr(10), 0, found.start()) + 1}" if found else ""
    return ClusterFileError(
        f"{source}{line}: a number of {len(found[0]) if found else 'over 4300'} digits"
        " (no Kubernetes field holds one that long)"
    )


class Locator(ABC):
    """Finds the line of a path in the file, parsing it again only when asked."""

    @abstractmethod
    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        """The line of the deepest element of `keys` that exists in document `doc`."""

    def prepare(self, keys: list[tuple[Key, ...]]) -> None:  # noqa: B027 (most need none)
        """Get ready to be asked the lines of `keys` (paths into document 0), all at once."""


class YamlLocator(Locator):
    """Finds lines by composing the YAML again, node by node with their marks."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._docs: list[yaml.Node] | None = None

    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        """The line of the deepest element of `keys` that exists in document `doc`."""
        if self._docs is None:
            self._docs = list(yaml.compose_all(self._text, Loader=YamlLoader))
        if doc >= len(self._docs):
            return 1
        node = self._docs[doc]
        line = node.start_mark.line + 1
        for key in keys:
            if isinstance(node, yaml.MappingNode) and isinstance(key, str):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                        # A mapping entry is reported at its key: in block style
                        # a mapping or list value starts on the next line.
                        line = key_node.start_mark.line + 1
                        node = value_node
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line


class JsonLocator(Locator):
    """Walks the JSON text to a path, skipping values with the C decoder.

    The offsets of list elements are remembered, so reporting on thousands of
    items of one `kind: List` walks the file once, not once per item.
    """

    _WS = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoder = json.JSONDecoder()
        self._elements: dict[int, tuple[list[int], int]] = {}
        # Offsets whose line is known, and those lines: a line is counted from
        # the nearest known offset before it, not from a list of every newline
        # (nine million of them in a pretty-printed 150,000-pod dump).
        self._offsets = [0]
        self._lines = [1]

    def _skip(self, pos: int) -> int:
        match = self._WS.match(self._text, pos)
        return match.end() if match else pos

    def _member(self, pos: int, key: str) -> tuple[int, int] | None:
        """(key offset, value offset) of `key` in the object at `pos`."""
        text = self._text
        pos = self._skip(pos + 1)
        while text.startswith('"', pos):
            name, end = self._decoder.raw_decode(text, pos)
            value = self._skip(self._skip(end) + 1)
            if name == key:
                return pos, value
            _, end = self._decoder.raw_decode(text, value)
            end = self._skip(end)
            if not text.startswith(",", end):
                return None
            pos = self._skip(end + 1)
        return None

    def _element(self, pos: int, index: int) -> int | None:
        """The offset of element `index` of the list at `pos`."""
        text = self._text
        offsets, resume = self._elements.get(pos, ([], self._skip(pos + 1)))
        while len(offsets) <= index and resume >= 0:
            if text.startswith("]", resume):
                resume = -1
                break
            offsets.append(resume)
            _, end = self._decoder.raw_decode(text, resume)
            end = self._skip(end)
            resume = self._skip(end + 1) if text.startswith(",", end) else -1
        self._elements[pos] = (offsets, resume)
        return offsets[index] if index < len(offsets) else None

    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        """The line of the deepest element of `keys` that exists in the JSON document."""
        text = self._text
        pos = self._skip(0)
        report = pos
        for key in keys:
            if isinstance(key, str) and text.startswith("{", pos):
                found = self._member(pos, key)
                if found is None:
                    break
                report, pos = found
            elif isinstance(key, int) and text.startswith("[", pos):
                element = self._element(pos, key)
                if element is None:
                    break
                report = pos = element
            else:
                break
        return self._line_at(report)

    def _line_at(self, offset: int) -> int:
        """The line of the character at `offset`."""
        nearest = bisect_right(self._offsets, offset) - 1
        line = self._lines[nearest] + self._text.count("\n", self._offsets[nearest], offset)
        self._offsets.insert(nearest + 1, offset)
        self._lines.insert(nearest + 1, line)
        return line
