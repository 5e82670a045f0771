"""`kubehop completion bash|zsh|fish`: the script that makes the shell complete kubehop."""

from __future__ import annotations

from tui.cli.complete import shell_script
from tui.cli.output import write_text
from tui.cli.status import EXIT_OK


def run_completion(shell: str) -> int:
    """Print argcomplete's registration of `kubehop` for `shell`."""
    write_text(shell_script(shell))
    return EXIT_OK
