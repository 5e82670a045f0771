"""A rule line into words as a shell splits it, and the error a problem in one line raises."""

from __future__ import annotations

import re
import shlex


class LineError(Exception):
    """A problem in one line; the caller adds source and line number."""


class StructureError(LineError):
    """A line iptables-restore refuses whatever the kernel held, so the whole text is refused.

    A rule in an undeclared chain, a jump to a chain that does not exist, a
    jump to a built-in chain. Any other problem in a rule (a value kubehop
    cannot read, an option of another iptables version) leaves the rule in
    place as one kubehop cannot evaluate.
    """


_WORD = re.compile(r"""(?:[^\s"'\\]+|"(?:[^"\\]|\\.)*"|'[^']*'|\\.)+""", re.DOTALL)
_PIECE = re.compile(r"""[^\s"'\\]+|"((?:[^"\\]|\\.)*)"|'([^']*)'|\\(.)""", re.DOTALL)
_QUOTING = re.compile(r"""["'\\]""")
_DQ_ESCAPE = re.compile(r'\\(["\\])')


def tokens(line: str) -> list[str]:
    """The words of `line` as `shlex.split` gives them, without shlex's per-character loop."""
    if '"' not in line and "'" not in line and "\\" not in line:
        return line.split()
    words: list[str] = []
    pos = 0
    for word in _WORD.finditer(line):
        if line[pos : word.start()].strip():
            break
        text = word.group(0)
        words.append(_PIECE.sub(_unquote, text) if _QUOTING.search(text) else text)
        pos = word.end()
    else:
        if not line[pos:].strip():
            return words
    # A stray quote or backslash: let shlex say what is wrong.
    try:
        return shlex.split(line)
    except ValueError as err:
        raise LineError(f"cannot split rule into words: {err}") from None


def _unquote(piece: re.Match[str]) -> str:
    double, single, escaped = piece.group(1), piece.group(2), piece.group(3)
    if double is not None:
        # In double quotes POSIX shells (and shlex) unescape only \" and \\.
        return _DQ_ESCAPE.sub(r"\1", double)
    if single is not None:
        return single
    if escaped is not None:
        return escaped
    return piece.group(0)
