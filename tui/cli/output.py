"""What the commands write: stdout a terminal cannot be steered by, whole files, a progress bar."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from model.errors import KubehopError, escaped


def write_text(text: str) -> None:
    """Write `text` to stdout with every control character but newline and tab escaped.

    Every command's text goes through here: names, comments and module names
    come from cluster files and node dumps anyone can write, and a raw ESC or
    CR in them would act on the user's terminal.
    """
    sys.stdout.write(escaped(text, keep="\n\t"))


def write_json(text: str) -> None:
    """Write JSON to stdout with the characters `json.dumps` leaves raw (DEL, C1) as `\\u` escapes."""
    # json.dumps(ensure_ascii=False) escapes only U+0000-U+001F; the rest can only
    # be inside strings, where `\u009b` reads back as the same character.
    sys.stdout.write(
        "\n".join(
            line if line.isprintable() else "".join(_json_char(c) for c in line)
            for line in text.split("\n")
        )
    )


def _json_char(c: str) -> str:
    return c if c.isprintable() else json.dumps(c)[1:-1]


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a failed write leaves the old file as it was.

    A regular file (or a new one) is written beside itself and renamed over;
    anything else (a pipe, /dev/stdout) is written in place.
    """
    name = str(path)  # KubehopError escapes what a terminal would act on
    try:
        if path.exists() and not path.is_file():
            if path.is_dir():
                raise KubehopError(f"{name}: is a directory")
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except FileNotFoundError:
        raise KubehopError(f"{name}: no such directory {path.parent}") from None
    except OSError as err:
        raise KubehopError(f"{name}: cannot write: {err.strerror or err}") from None


def _umask() -> int:
    # The umask can only be read by setting it; it is put back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class ProgressBar:
    """A progress line on stderr while a big dump loads (only on a terminal)."""

    def __init__(self) -> None:
        self.shown = False
        self.last = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Show `done` of `total` for `stage`, if the terminal would notice."""
        if total <= 0 or not sys.stderr.isatty():
            return
        # Small files load in a blink; a bar would only flicker.
        if not self.shown and total < 4_000_000 and not stage.startswith("checking"):
            return
        if stage.startswith("checking") and total < 5_000 and not self.shown:
            return
        percent = done * 100 // total
        if percent == self.last and done < total:
            return
        self.last = percent
        self.shown = True
        width = 30
        filled = width * done // total
        unit = "objects" if stage.startswith("checking") else "bytes"
        sys.stderr.write(
            f"\r{stage[:40]:<40} [{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"
            f" ({done:,}/{total:,} {unit})"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        """End the bar's line, if one was drawn."""
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
