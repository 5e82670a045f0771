"""`kubehop serve`: the same app in a browser, through textual-serve."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from textual_serve.server import Server

_ROOT = Path(__file__).resolve().parent.parent
"""The directory that holds the `tui` package, so the app starts from any directory."""

_APP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tui.app import run; "
    "sys.exit(run(sys.argv[2] or None))"
)
"""What each browser session runs: textual-serve starts one app process per page."""


def serve(cluster_path: str | None, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve the app on http://host:port/ until interrupted."""
    # The cluster path is resolved here: the app processes may run elsewhere.
    cluster = str(Path(cluster_path).resolve()) if cluster_path else ""
    command = [sys.executable, "-c", _APP, str(_ROOT), cluster]
    server = Server(shlex.join(command), host=host, port=port, title="kubehop")
    server.serve()
    return 0
