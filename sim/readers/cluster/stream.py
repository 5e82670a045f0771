"""A JSON `kind: List` file read one item at a time, so its whole tree never lives at once.

`kubectl get … -o json` of a big cluster is hundreds of megabytes, and
`json.loads` of it makes six times that in dicts before the first object is
checked. Here the file is read a chunk at a time and each item of the List is
decoded alone by the standard library's C decoder (`JSONDecoder.raw_decode`),
which is as fast per byte as `json.loads`; the item is checked and dropped
before the next is read. (ijson, the streaming parser on the package index,
measured 1.3-2× `json.loads` on the 209 MB file, against 0.6-1.05× here; a
load may take at most 3×.)

Only the shape kubectl writes is read this way: one top-level object, its
`items` an array, every other member small. `Unstreamable` says that a file is
anything else (or not valid JSON, or not UTF-8); the caller then reads it
whole, as every other file, so what it accepts and every message stay the same.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sim.readers.cluster.documents import JsonLocator, Key, Locator
from sim.readers.cluster.files import read_text

__all__ = ["CHUNK", "FileLocator", "JsonList", "Unstreamable", "starts_an_object"]

CHUNK = 1 << 20
"""Bytes read at a time."""

_CUT_OFF = 1 << 20
_AHEAD = 1 << 16
_WS = re.compile(r"[ \t\n\r]*")
_BLANKS = " \t\n\r"
_DECODER = json.JSONDecoder()


class Unstreamable(Exception):
    """The file is not a JSON List this module reads item by item: read it whole instead."""


def starts_an_object(path: Path) -> bool:
    """Whether the regular file at `path` starts (after a BOM and blanks) with `{`."""
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n").startswith(b"{")


class JsonList:
    """The top-level object of a JSON file: its `items` one by one, then its other members.

    `members` holds the members other than `items` read so far; `items()`
    yields `(index, item)` and, when it ends, the whole object has been read
    and found well formed.
    """

    def __init__(self, file: BinaryIO, told: Callable[[int], None] | None = None) -> None:
        self._file = file
        self._told = told
        self._decode = codecs.getincrementaldecoder("utf-8-sig")()
        self._text = ""
        self._pos = 0
        self._eof = False
        # Characters of the file before `_text`, and newlines counted up to `_counted`.
        self._base = 0
        self._counted = 0
        self._line = 1
        self.starts = array("q")
        """Where each item starts in the file's text (a character offset)."""
        self.lines = array("q")
        """The line each item starts on."""
        self.members: dict[str, Any] = {}
        """The object's members other than `items`, as read so far."""
        self.streamed = False
        """Whether `items` was an array, yielded item by item (not in `members`)."""

    def _more(self) -> None:
        """Read the next chunk onto the text not yet consumed; Unstreamable at the end."""
        if self._eof:
            raise Unstreamable
        raw = self._file.read(CHUNK)
        try:
            added = self._decode.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise Unstreamable from None
        if not raw:
            self._eof = True
        elif self._told is not None:
            self._told(len(raw))
        self._newlines()
        self._text = self._text[self._pos :] + added
        self._base += self._pos
        self._pos = 0

    def _newlines(self) -> None:
        """Count the newlines up to the current position, before they are dropped."""
        counted = self._counted - self._base
        self._line += self._text.count("\n", counted, self._pos)
        self._counted = self._base + self._pos

    def _skip(self) -> str:
        """Skip blanks; the next character, or "" at the end of the file."""
        while True:
            match = _WS.match(self._text, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._text):
                return self._text[self._pos]
            if self._eof:
                return ""
            self._more()

    def _value(self) -> Any:
        """Decode the value at the current position, reading on while it is cut off."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as err:
                # Cut off by the chunk's end, or not JSON. A value cut off is
                # found wanting near the end of the text (an unterminated
                # string at its start: one over a megabyte sends the file to
                # be read whole, which is slower but reads the same).
                if err.pos + _CUT_OFF < len(self._text):
                    raise Unstreamable from None
                self._more()
                continue
            except (RecursionError, ValueError):  # too deep, or too many digits
                raise Unstreamable from None
            # A number at the chunk's end may go on in the next one.
            if end < len(self._text) or self._eof:
                self._pos = end
                return value
            self._more()

    def _expect(self, char: str) -> None:
        if self._skip() != char:
            raise Unstreamable
        self._pos += 1

    def items(self) -> Iterator[tuple[int, Any]]:
        """Each item of the `items` array, then the rest of the object read and checked."""
        self._expect("{")
        if self._skip() == "}":
            self._pos += 1
            self._end()
            return
        while True:
            if self._skip() != '"':
                raise Unstreamable
            key = self._value()
            self._expect(":")
            if key in self.members or (key == "items" and self.streamed):
                raise Unstreamable  # json.loads keeps the last of a repeated key
            if self._skip() == "[" and key == "items":
                self.streamed = True
                yield from self._elements()
            else:
                self.members[key] = self._value()
            following = self._skip()
            self._pos += 1
            if following == "}":
                break
            if following != ",":
                raise Unstreamable
        self._end()

    def _elements(self) -> Iterator[tuple[int, Any]]:
        self._pos += 1
        if self._skip() == "]":
            self._pos += 1
            return
        index = 0
        decode = _DECODER.raw_decode
        while True:
            self._newlines()
            self.starts.append(self._counted)
            self.lines.append(self._line)
            # The usual item, inline: a value whole in the text, then "," or "]".
            # The text is topped up before an item could be cut off: a decoding
            # error costs a count of the lines before it.
            if len(self._text) - self._pos < _AHEAD and not self._eof:
                self._more()
            text = self._text
            try:
                value, end = decode(text, self._pos)
            except json.JSONDecodeError:
                value, end = None, len(text)  # cut off, or not JSON: _value tells
            except (RecursionError, ValueError):  # too deep, or too many digits
                raise Unstreamable from None
            if end >= len(text):
                if self._skip() == "":
                    raise Unstreamable
                value = self._value()
                text, end = self._text, self._pos
            following = text[end] if end < len(text) else ""
            if following == "" or following in _BLANKS:
                self._pos = end
                following = self._skip()  # "" at the end of the file
                end = self._pos
            yield index, value
            index += 1
            if following == "]":
                self._pos = end + 1
                return
            if following != ",":
                raise Unstreamable
            self._pos = end + 1
            if self._pos < len(self._text) and self._text[self._pos] in _BLANKS:
                self._skip()

    def _end(self) -> None:
        if self._skip() != "":
            raise Unstreamable  # more after the object: not one JSON document


class FileLocator(Locator):
    """Lines in a file that was streamed, found in the text of the items messages are about.

    `prepare` reads the file once more and keeps only those items' text (where
    each item starts, and on which line, was noted while streaming); a line
    not prepared for is found in the whole text, read again.
    """

    def __init__(self, path: Path, listed: JsonList) -> None:
        self._path = path
        self._listed = listed
        self._items: dict[int, JsonLocator] = {}
        self._whole: JsonLocator | None = None

    def prepare(self, keys: list[tuple[Key, ...]]) -> None:
        """Read the file once for the items that `keys` (paths into the document) lead into."""
        starts = self._listed.starts
        wanted = sorted(
            {
                path[1]
                for path in keys
                if len(path) > 1
                and path[0] == "items"
                and type(path[1]) is int
                and path[1] < len(starts)
                and path[1] not in self._items
            }
        )
        if not wanted:
            return
        spans = {
            index: (starts[index], starts[index + 1] if index + 1 < len(starts) else None)
            for index in wanted
        }
        found: dict[int, list[str]] = {index: [] for index in wanted}
        decode = codecs.getincrementaldecoder("utf-8-sig")()
        done = 0
        last = max(start for start, _ in spans.values())
        with self._path.open("rb") as file:
            while True:
                raw = file.read(CHUNK)
                text = decode.decode(raw, final=not raw)
                for index, (start, end) in spans.items():
                    if start < done + len(text) and (end is None or end > done):
                        low = max(start - done, 0)
                        found[index].append(text[low : None if end is None else end - done])
                done += len(text)
                if not raw or (
                    done > last
                    and all(end is not None and end <= done for start, end in spans.values())
                ):
                    break
        for index, parts in found.items():
            self._items[index] = JsonLocator("".join(parts))

    def line(self, doc: int, keys: tuple[Key, ...]) -> int:
        """The line of the deepest element of `keys` that exists in the JSON document."""
        if len(keys) > 1 and keys[0] == "items" and type(keys[1]) is int:
            item = self._items.get(keys[1])
            if item is not None:
                return self._listed.lines[keys[1]] + item.line(0, keys[2:]) - 1
        if self._whole is None:
            self._whole = JsonLocator(read_text(self._path).removeprefix("\ufeff"))
        return self._whole.line(doc, keys)
