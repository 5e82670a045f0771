"""User text as a one-line message shows it: escaped when it holds control characters."""

from __future__ import annotations

from datetime import date


def show(value: object) -> str:
    """`value` as it reads, or repr-escaped when it holds control characters."""
    if isinstance(value, bool):  # as YAML and JSON write it
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    text = value if isinstance(value, str) else repr(value)
    return text if text.isprintable() else repr(text)


def quoted(value: object) -> str:
    """`value` quoted the way Python would print it, escapes included."""
    return repr(value) if isinstance(value, str) else show(value)


def one_line(message: str) -> str:
    """`message` with anything unprintable escaped, so it stays one line."""
    # The last guard: anything a library put in the message (a YAML problem
    # text, an OS error) is escaped like a name would be.
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def yaml_type(value: object) -> str:
    """The YAML/JSON type of `value`, for "must be a string, not a list"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):  # YAML reads 2024-01-01 as a date
        return "a date"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__
