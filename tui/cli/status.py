"""The exit statuses every `kubehop` subcommand shares."""

from __future__ import annotations

EXIT_OK = 0
"""Delivered, or the command did what it was asked."""

EXIT_NOT_DELIVERED = 1
"""The packet was dropped, rejected or unreachable (or `rules --diff` found a difference)."""

EXIT_DISAGREE = 1
"""`lab verify` found the kernel and kubehop disagreeing."""

EXIT_BAD_INPUT = 2
"""A user mistake, or a machine that cannot run the lab: one line on stderr."""

EXIT_INTERRUPTED = 130
"""The lab was interrupted (after removing what the run made), as a shell reports SIGINT."""
