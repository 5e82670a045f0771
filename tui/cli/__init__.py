"""The `kubehop` command line: one parser for every subcommand, one module for each one's work.

Exit status: 0 delivered (or success), 1 the packet was dropped, rejected or
unreachable (`lab verify`: kubehop and the kernel disagree), 2 bad input,
130 an interrupted lab. Every user mistake is one line on stderr.
"""

# PYTHON_ARGCOMPLETE_OK: argcomplete's global completion (activate-global-python-argcomplete)
# completes a console script only when its module says so in its first kilobyte.

from __future__ import annotations

from tui.cli.dispatch import main, run
from tui.cli.parser import build_parser

__all__ = ["build_parser", "main", "run"]
