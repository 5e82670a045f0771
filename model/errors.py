"""Errors a user can cause. Each message is one line naming what and where."""

from __future__ import annotations


def escaped(text: str, keep: str = "") -> str:
    """`text` with every character a terminal would act on shown as its escape (`\\x1b`), but `keep`'s."""
    # Names and comments come from files anyone can write: ESC, CSI (U+009B), BEL
    # or CR printed raw would move the cursor, retitle the window or hide text.
    # Python's idea of unprintable covers the C0 and C1 controls, DEL, and the
    # invisible format and separator characters (bidi overrides, U+2028).
    if text.isprintable():
        return text
    if "\n" not in keep:
        return _escaped_line(text, keep)
    # Line by line: a long listing is mostly printable lines, one C call each.
    return "\n".join(
        line if line.isprintable() else _escaped_line(line, keep) for line in text.split("\n")
    )


def _escaped_line(text: str, keep: str) -> str:
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


class KubehopError(Exception):
    """A user mistake: bad input, an unknown name, an impossible request."""

    def __str__(self) -> str:
        # The last guard for "one line": a name quoted from the user's input
        # (a newline, an escape sequence) is shown escaped, never acted on.
        return escaped(super().__str__())


class ClusterFileError(KubehopError):
    """A cluster file that cannot be read or fails Kubernetes' validation."""


class RulesParseError(KubehopError):
    """An iptables-save text that cannot be parsed."""


class RulesWalkError(KubehopError):
    """Rules whose walk kubehop cannot finish: they branch out beyond what it follows."""


class RequestError(KubehopError):
    """A source or destination that does not name anything in the cluster."""
