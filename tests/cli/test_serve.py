"""`kubehop serve` opens only for this run's page: its Host, its Origin, its token, a few sessions.

Most tests drive the guarded textual-serve application through aiohttp's test
server with a stand-in app (a few lines speaking textual-serve's protocol), so
a session costs a Python start, not a Textual app. One test runs the real
`kubehop serve` as a subprocess and reads the address it prints.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests import paths
from tui.cli.serve import GuardedServer

TOKEN = "test-token-0123456789"

STAND_IN = """\
import json, sys
out, inp = sys.stdout.buffer, sys.stdin.buffer
out.write(b"__GANGLION__\\n")
out.write(b"D" + (5).to_bytes(4, "big") + b"hello")
out.flush()
while len(head := inp.read(5)) == 5:
    body = inp.read(int.from_bytes(head[1:], "big"))
    if head[:1] == b"M" and json.loads(body)["type"] == "quit":
        break
"""
"""An app as textual-serve sees one: the prelude, one frame of output, then quit when told."""


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def served() -> AsyncIterator[
    tuple[GuardedServer, TestClient[aiohttp.web.Request, aiohttp.web.Application]]
]:
    """The guarded server (one session at most) on a free port, and a client for it."""
    port = free_port()
    server = GuardedServer(
        shlex.join([sys.executable, "-c", STAND_IN]), port=port, max_sessions=1, token=TOKEN
    )
    server.slot_wait = 0.2
    client = TestClient(TestServer(await server._make_app(), host="127.0.0.1", port=port))
    await client.start_server()
    try:
        yield server, client
    finally:
        # Every app has quit before the loop closes: no process outlives the test.
        await no_sessions(server)
        await client.close()


async def no_sessions(server: GuardedServer) -> None:
    """Wait until every session's app has quit."""
    for _ in range(200):
        if server.sessions == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{server.sessions} sessions still running")


def own(server: GuardedServer) -> dict[str, str]:
    """The headers the page this server gave sends."""
    return {"Host": f"127.0.0.1:{server.port}", "Origin": f"http://127.0.0.1:{server.port}"}


async def test_the_right_token_gets_the_page_and_a_cookie_for_the_rest(served) -> None:  # type: ignore[no-untyped-def]
    server, client = served
    page = await client.get(f"/?token={TOKEN}")
    assert page.status == 200
    html = await page.text()
    # The page's scripts and websocket are on the Host it was opened by.
    assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in html
    cookie = page.cookies[f"kubehop-serve-{server.port}"]
    assert cookie.value == TOKEN
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert page.headers["X-Frame-Options"] == "DENY"
    # The page's static files and websocket carry the token in the cookie only.
    cookies = {"Cookie": f"kubehop-serve-{server.port}={TOKEN}"}
    script = await client.get("/static/js/textual.js", headers=cookies)
    assert script.status == 200
    async with client.ws_connect("/ws", headers={**own(server), **cookies}) as ws:
        message = await ws.receive(timeout=10)
        assert message.data == b"hello"


async def test_localhost_is_this_server_too(served) -> None:  # type: ignore[no-untyped-def]
    server, client = served
    page = await client.get(f"/?token={TOKEN}", headers={"Host": f"localhost:{server.port}"})
    assert page.status == 200
    assert f'"ws://localhost:{server.port}/ws"' in await page.text()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/", "kubehop serve wants the token it printed"),
        ("/?token=wrong", "kubehop serve wants the token it printed"),
        ("/?token=", "kubehop serve wants the token it printed"),
        ("/static/js/textual.js", "kubehop serve wants the token it printed"),
        ("/download/x", "kubehop serve wants the token it printed"),
    ],
)
async def test_without_the_token_everything_is_refused(served, path: str, message: str) -> None:  # type: ignore[no-untyped-def]
    server, client = served
    response = await client.get(path)
    assert response.status == 403
    assert await response.text() == (
        f"{message}: open the address it printed (http://127.0.0.1:{server.port}/?token=…)\n"
    )


async def test_a_foreign_host_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    # DNS rebinding: evil.example resolves to 127.0.0.1, the browser still says its name.
    server, client = served
    for host in (f"evil.example:{server.port}", "127.0.0.1:1", "127.0.0.1"):
        response = await client.get(f"/?token={TOKEN}", headers={"Host": host})
        assert response.status == 403
        assert await response.text() == (
            f"kubehop serve answers only to 127.0.0.1:{server.port} and localhost:{server.port},"
            f" not to Host {host!r}\n"
        )


async def test_a_foreign_origin_is_refused(served) -> None:  # type: ignore[no-untyped-def]
    server, client = served
    for origin in ("http://evil.example", f"http://localhost:{server.port}", "null"):
        headers = {**own(server), "Origin": origin}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"/ws?token={TOKEN}", headers=headers)
        assert refused.value.status == 403
        page = await client.get(f"/?token={TOKEN}", headers=headers)
        assert page.status == 403
        assert await page.text() == (
            f"kubehop serve takes requests only from its own page"
            f" (http://127.0.0.1:{server.port}), not from {origin!r}\n"
        )
    assert server.sessions == 0


async def test_sessions_beyond_the_cap_are_refused_until_one_ends(served) -> None:  # type: ignore[no-untyped-def]
    server, client = served
    url = f"/ws?token={TOKEN}"
    full = (
        "kubehop serve already runs 1 session (--max-sessions 1): close another kubehop tab,"
        " then reload this one\n"
    )
    first = await client.ws_connect(url, headers=own(server))
    assert (await first.receive(timeout=10)).data == b"hello"
    assert server.sessions == 1
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url, headers=own(server))
    assert refused.value.status == 503
    page = await client.get(f"/?token={TOKEN}")
    assert (page.status, await page.text()) == (503, full)
    await first.close()
    # The first app quits; the next tab gets its place.
    server.slot_wait = 10
    async with client.ws_connect(url, headers=own(server)) as again:
        assert (await again.receive(timeout=10)).data == b"hello"
    await no_sessions(server)


@pytest.fixture
def kubehop_serve() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`kubehop serve` on a free port, with one session at most, and the address it printed."""
    port = free_port()
    command = [sys.executable, "-m", "tui.cli", "serve", "--port", str(port), "--max-sessions", "1"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=paths.ROOT,
        env={**os.environ, "PYTHONPATH": str(paths.ROOT)},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.fullmatch(r"kubehop serve: open (http://127\.0\.0\.1:\d+/\?token=\S+)\n", first)
        assert found, first
        yield found.group(1), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_kubehop_serve_prints_a_fresh_token_and_wants_it(
    kubehop_serve: tuple[str, subprocess.Popen[str]],
) -> None:
    url, process = kubehop_serve
    assert process.stdout is not None
    assert process.stdout.readline() == (
        "  only that address opens the app (its token is new each run), from this machine;"
        " at most 1 session at once (--max-sessions)\n"
    )
    with urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200
    bare = url.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 403


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-sessions", "0"], "kubehop: error: --max-sessions 0: must be at least 1\n"),
        (["--port", "0"], "kubehop: error: --port 0 is out of range (1-65535)\n"),
    ],
)
def test_bad_serve_options_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui.cli import run

    assert run(["serve", *argv]) == 2
    assert capsys.readouterr().err == message


def test_the_help_names_every_option_and_its_default() -> None:
    from tui.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["serve"].format_help()  # type: ignore[attr-defined]
    assert "--port PORT       the port on 127.0.0.1 to listen on (default: 8000)" in text
    assert "(default: 4)" in text and "--max-sessions N" in text
    assert "(default: the" in text and "built-in demo)" in text
    assert "?token=" in text


def test_the_root_of_this_repo_is_what_serve_starts_the_app_from() -> None:
    from tui.cli import serve

    assert Path(serve._ROOT) == paths.ROOT
