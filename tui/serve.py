"""`kubehop serve`: the same app in a browser, through textual-serve."""

from __future__ import annotations

import shlex
import sys

from textual_serve.server import Server


def serve(cluster_path: str | None, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve the app on http://host:port/ until interrupted."""
    command = [
        sys.executable,
        "-c",
        "import sys; from tui.app import run; sys.exit(run(sys.argv[1] or None))",
        cluster_path or "",
    ]
    server = Server(shlex.join(command), host=host, port=port, title="kubehop")
    server.serve()
    return 0
