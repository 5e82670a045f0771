"""`kubehop scenarios`: the article's four scenarios, each as the command that traces it."""

from __future__ import annotations

from tui.cli.output import write_text
from tui.cli.status import EXIT_OK


def run_scenarios() -> int:
    """Print each scenario: its headline, its goal and the command that traces it."""
    from sim.trace.presets import PRESETS

    blocks = [
        f"{preset.headline}\n  goal: {preset.goal}\n  $ {preset.command}\n" for preset in PRESETS
    ]
    write_text("\n".join(blocks))
    return EXIT_OK
