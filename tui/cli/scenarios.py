"""`kubehop scenarios`: the article's four scenarios, each as the command that traces it."""

from __future__ import annotations

from tui.cli.output import write_text
from tui.cli.status import EXIT_OK


def run_scenarios() -> int:
    """Print one line per scenario: its key, title and command."""
    from sim.trace.presets import PRESETS

    for preset in PRESETS:
        write_text(f"{preset.key}  {preset.title:<45} {preset.command}\n")
    return EXIT_OK
