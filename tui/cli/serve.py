"""`kubehop serve`: the same app in a browser, through textual-serve."""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path

from textual_serve.server import Server

from model.errors import KubehopError
from tui.cli.status import EXIT_OK

_ROOT = Path(__file__).resolve().parents[2]
"""The directory that holds the `tui` package (this is tui/cli/serve.py), so the app starts
from any directory."""

_APP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tui.app import run; "
    "sys.exit(run(sys.argv[2] or None))"
)
"""What each browser session runs: textual-serve starts one app process per page."""


def serve(cluster_path: str | None, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve the app on http://host:port/ until interrupted.

    The cluster is loaded once here first, so a bad file is one error line now
    rather than a broken page in every browser that opens.
    """
    from sim.cluster.load import load

    if not 1 <= port <= 65535:
        raise KubehopError(f"--port {port} is out of range (1-65535)")
    load(Path(cluster_path) if cluster_path else None)
    # The cluster path is resolved here: the app processes may run elsewhere.
    cluster = str(Path(cluster_path).resolve()) if cluster_path else ""
    command = [sys.executable, "-c", _APP, str(_ROOT), cluster]
    server = Server(shlex.join(command), host=host, port=port, title="kubehop")
    _check_free(host, port)
    try:
        server.serve()
    except OSError as err:
        raise KubehopError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
    return EXIT_OK


def _check_free(host: str, port: int) -> None:
    """One error line if `host:port` is taken, before textual-serve prints its banner."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise KubehopError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
