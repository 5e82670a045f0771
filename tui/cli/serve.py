"""`kubehop serve`: the same app in a browser, through textual-serve, for this run's page only.

Any web page the user visits can ask the browser for http://127.0.0.1:8000/,
and a DNS name an attacker controls can resolve to 127.0.0.1; a page that
reached the app could read the loaded cluster and press keys. So, as Jupyter
and code-server do, the server binds 127.0.0.1 only, answers only to its own
Host, takes WebSocket connections only from its own page's Origin, wants the
per-run token it prints (in the URL, then a cookie the page carries to its
scripts and websocket), and runs at most `--max-sessions` apps at once (each
browser session is an app process of its own, ≈ 60 MiB).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import hdrs, web
from textual_serve.server import Server, to_int

from model.errors import KubehopError
from tui.cli.status import EXIT_OK

HOST = "127.0.0.1"
"""The only address `serve` binds: the app is for this machine's user."""

DEFAULT_PORT = 8000
"""`--port` when none is given."""

DEFAULT_MAX_SESSIONS = 4
"""`--max-sessions` when none is given: a few tabs, not a fork bomb."""

_ROOT = Path(__file__).resolve().parents[2]
"""The directory that holds the `tui` package (this is tui/cli/serve.py), so the app starts
from any directory."""

_APP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tui.app import run; "
    "sys.exit(run(sys.argv[2] or None, cni=sys.argv[3] or None, mode=sys.argv[4] or None))"
)
"""What each browser session runs: textual-serve starts one app process per page."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedServer(Server):
    """textual-serve's server, answering only this run's page on 127.0.0.1, a few sessions at once.

    textual-serve has no authentication or origin check of its own; its aiohttp
    application is built in one method (`_make_app`), so a subclass adds a
    middleware and wraps the websocket handler. A fork would have to follow every
    textual-serve release; `tests/cli/test_serve.py` notices if this seam moves.
    """

    slot_wait = 2.0
    """Seconds a new session waits for a free one: a reloaded tab's old app takes a moment to quit."""

    def __init__(
        self,
        command: str,
        *,
        port: int = DEFAULT_PORT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        token: str | None = None,
    ) -> None:
        super().__init__(command, host=HOST, port=port, title="kubehop")
        self.max_sessions = max_sessions
        """At most this many app processes run at once."""
        self.token = token or secrets.token_urlsafe(32)
        """The secret in the URL: new each run, so an old or guessed link opens nothing."""
        self.sessions = 0
        """App sessions running now."""
        # Browsers send `Host: 127.0.0.1:8000`, dropping the port only when it is 80.
        names = ("127.0.0.1", "localhost")
        self.hosts = frozenset(f"{n}:{port}" for n in names) | (
            frozenset(names) if port == 80 else frozenset()
        )
        """The Host headers this server answers to."""
        # Cookies ignore ports: a name per port keeps two runs from clobbering each other.
        self.cookie = f"kubehop-serve-{port}"
        """The cookie the page's scripts, styles and websocket carry the token in."""
        self._slots: asyncio.Condition | None = None
        self._announcing: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The address to open: the page, with the token."""
        return f"{self.public_url}/?token={self.token}"

    def initialize_logging(self) -> None:
        """textual-serve's request log, with the token left out of every line it prints."""
        super().initialize_logging()
        logging.getLogger("aiohttp.access").addFilter(_Scrub(self.token))

    async def _make_app(self) -> web.Application:
        app: web.Application = await super()._make_app()
        app.middlewares.append(self._guard)
        app.on_response_prepare.append(self._harden)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse a foreign Host or Origin, or a request without the token, with 403."""
        host = request.headers.get(hdrs.HOST, "")
        if host not in self.hosts:
            # DNS rebinding: evil.example resolving to 127.0.0.1 still says Host: evil.example.
            return _refused(
                403,
                f"kubehop serve answers only to {' and '.join(sorted(self.hosts))},"
                f" not to Host {host!r}",
            )
        origin = request.headers.get(hdrs.ORIGIN)
        # A browser sends Origin with every websocket and every cross-site request;
        # only the page this server gave (same scheme, host and port) may drive the app.
        if origin is not None and origin != f"http://{host}":
            return _refused(
                403,
                f"kubehop serve takes requests only from its own page (http://{host}),"
                f" not from {origin!r}",
            )
        given = request.query.get("token") or request.cookies.get(self.cookie, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _refused(
                403,
                "kubehop serve wants the token it printed: open the address it printed"
                f" (http://{host}/?token=…)",
            )
        response = await handler(request)
        if request.query.get("token") and request.cookies.get(self.cookie) != self.token:
            # The page's scripts, styles and websocket carry the token from here on
            # (textual.js builds the websocket URL itself, so it cannot go there).
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response

    async def _harden(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers for every response: no framing, no third-party fetches, no referrer."""
        host = request.headers.get(hdrs.HOST, "")
        # The page is textual-serve's template, with inline script and style; the
        # Google Fonts stylesheet it names is blocked (the terminal falls back to a
        # local monospace font) so that opening the app tells no third party.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
            f" img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws://{host};"
            " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, its URLs on the Host it was opened by (so localhost works as well as 127.0.0.1)."""
        if not await self._slot_free():
            raise web.HTTPServiceUnavailable(text=self._full_message() + "\n")
        base = f"http://{request.headers[hdrs.HOST]}"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": "ws" + base.removeprefix("http") + "/ws",
            "config": {"static": {"url": f"{base}/static/"}},
            "application": {"name": self.title},
        }

    # The refusal is a plain HTTP response where textual-serve always upgrades.
    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        """One app session, if fewer than `max_sessions` run; else 503 and why."""
        if not await self._slot_free(take=True):
            return _refused(503, self._full_message())
        try:
            response: web.StreamResponse = await super().handle_websocket(request)
            return response
        finally:
            slots = self._condition()
            async with slots:
                self.sessions -= 1
                slots.notify_all()

    async def _slot_free(self, *, take: bool = False) -> bool:
        """Whether a session may start (and, with `take`, count it), waiting up to `slot_wait`."""
        slots = self._condition()
        async with slots:
            try:
                await asyncio.wait_for(
                    slots.wait_for(lambda: self.sessions < self.max_sessions), self.slot_wait
                )
            except TimeoutError:
                return False
            # Counted under the lock it was checked under: two tabs cannot both take the last one.
            self.sessions += take
        return True

    def _condition(self) -> asyncio.Condition:
        # Made on first use: a Condition belongs to the running loop.
        if self._slots is None:
            self._slots = asyncio.Condition()
        return self._slots

    def _full_message(self) -> str:
        return (
            f"kubehop serve already runs {self.max_sessions}"
            f" session{'' if self.max_sessions == 1 else 's'} (--max-sessions"
            f" {self.max_sessions}): close another kubehop tab, then reload this one"
        )

    async def on_startup(self, app: web.Application) -> None:
        """Say where the app is, with its token, and what protects it, once the port is open."""
        # aiohttp runs startup handlers before it binds the port: an address printed
        # now could be refused by whoever opens it at once (a script, a test).
        self._announcing = asyncio.create_task(self._announce())

    async def _announce(self) -> None:
        while True:
            try:
                _, probe = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            probe.close()
            break
        print(
            f"kubehop serve: open {self.url}\n"
            f"  only that address opens the app (its token is new each run), from this machine;"
            f" at most {self.max_sessions} session{'' if self.max_sessions == 1 else 's'} at once"
            " (--max-sessions)\n"
            "  Ctrl+C stops",
            flush=True,
        )


class _Scrub(logging.Filter):
    """Hides a secret from log lines: a log copied into a bug report should not open the app."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = record.msg.replace(self.secret, "…")
        return True


def _refused(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def serve(
    cluster_path: str | None,
    port: int = DEFAULT_PORT,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    *,
    cni: str | None = None,
    mode: str | None = None,
) -> int:
    """Serve the app on http://127.0.0.1:port/ until interrupted.

    The cluster is loaded once here first, so a bad file is one error line now
    rather than a broken page in every browser that opens.
    """
    from sim.cluster.load import load, with_dataplane

    if not 1 <= port <= 65535:
        raise KubehopError(f"--port {port} is out of range (1-65535)")
    if max_sessions < 1:
        raise KubehopError(f"--max-sessions {max_sessions}: must be at least 1")
    with_dataplane(load(Path(cluster_path) if cluster_path else None), cni=cni, mode=mode)
    # The cluster path is resolved here: the app processes may run elsewhere.
    cluster = str(Path(cluster_path).resolve()) if cluster_path else ""
    command = [sys.executable, "-c", _APP, str(_ROOT), cluster, cni or "", mode or ""]
    server = GuardedServer(shlex.join(command), port=port, max_sessions=max_sessions)
    _check_free(HOST, port)
    try:
        server.serve()
    except OSError as err:
        raise KubehopError(f"cannot serve on {HOST}:{port}: {err.strerror or err}") from None
    return EXIT_OK


def _check_free(host: str, port: int) -> None:
    """One error line if `host:port` is taken, before textual-serve starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise KubehopError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None
