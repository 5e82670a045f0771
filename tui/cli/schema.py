"""`kubehop schema`: the JSON Schema of `trace --json`."""

from __future__ import annotations

import json

from tui.cli.output import write_json
from tui.cli.status import EXIT_OK


def run_schema() -> int:
    """Print the schema that `trace --json` output follows."""
    from sim.trace.report import trace_schema

    write_json(json.dumps(trace_schema(), indent=2) + "\n")
    return EXIT_OK
