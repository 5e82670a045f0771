"""`kubehop serve` in a real browser: Debian's chromium, driven by Playwright, opens the printed address.

xterm.js draws the app on a canvas, so the test reads screenshots, not page
text: after the app's first bytes the page must show many colours, and
pressing `3` (scenario 3) must change them. Without chromium or Playwright
the test skips and says why; when CI=true a skip would hide a broken test,
so it fails instead (as the lab tests do).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import paths

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium (apt package `chromium`); Playwright's own browser download is never used."""

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium's flags besides --headless and --user-data-dir, which Playwright passes."""


def require_browser() -> None:
    """Skip when chromium or Playwright is missing, or fail when CI=true."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright; never `playwright install`)")
    if not missing:
        return
    reason = "the browser test needs " + " and ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: cannot run in CI")
    pytest.skip(reason)


@pytest.fixture
def served() -> Iterator[str]:
    """`kubehop serve` on a free port, one session at most; the address it printed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "serve", "--port", str(port), "--max-sessions", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=paths.ROOT,
        env={**os.environ, "PYTHONPATH": str(paths.ROOT)},
        # Its own process group: the app processes it starts end with it, whatever happens.
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.fullmatch(r"kubehop serve: open (http://127\.0\.0\.1:\d+/\?token=\S+)\n", line)
        assert found, line
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Anything of its group still alive (an app that outlived its server) ends here.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


COLOURS = """async (png) => {
    const image = new Image();
    image.src = "data:image/png;base64," + png;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return seen.size;
}"""
"""How many distinct colours a PNG screenshot holds (the browser decodes it; Python has no PNG reader here)."""

CHANGED = """async ([a, b]) => {
    const pixels = async (png) => {
        const image = new Image();
        image.src = "data:image/png;base64," + png;
        await image.decode();
        const canvas = document.createElement("canvas");
        canvas.width = image.width;
        canvas.height = image.height;
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        return context.getImageData(0, 0, canvas.width, canvas.height).data;
    };
    const [x, y] = [await pixels(a), await pixels(b)];
    let changed = 0;
    for (let i = 0; i < x.length; i += 4)
        if (x[i] !== y[i] || x[i + 1] !== y[i + 1] || x[i + 2] !== y[i + 2]) changed++;
    return changed;
}"""
"""How many pixels differ between two PNG screenshots of one size."""


def settled(page: Any, deadline: float) -> bytes:
    """A screenshot once two in a row are the same: the app has finished drawing."""
    last = page.screenshot()
    while time.monotonic() < deadline:
        time.sleep(0.4)
        shot = page.screenshot()
        if shot == last:
            return shot
        last = shot
    return last


def test_the_printed_address_opens_the_app_and_keys_drive_it(served: str, tmp_path: Path) -> None:
    require_browser()
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + 25
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 720},
        )
        try:
            page = browser.new_page()
            page.goto(served)
            # textual.js marks the page once the app's first bytes arrive.
            page.wait_for_selector("body.-first-byte", state="attached", timeout=20_000)
            page.focus(".xterm-helper-textarea")
            before = settled(page, deadline)
            blank = browser.new_page()
            colours = blank.evaluate(COLOURS, base64.b64encode(before).decode())
            assert colours >= 16, f"the app drew {colours} colours: is the canvas blank?"
            page.keyboard.press("3")
            after = before
            while after == before and time.monotonic() < deadline:
                time.sleep(0.2)
                after = page.screenshot()
            after = settled(page, deadline)
            changed = blank.evaluate(
                CHANGED, [base64.b64encode(before).decode(), base64.b64encode(after).decode()]
            )
            # Scenario 3 fills the panes: far more than a cursor's worth of pixels.
            assert changed > 5_000, f"pressing 3 changed {changed} pixels"
            # Challenge mode in the browser: c, then ] asks the first question in a dialog
            # over the trace (the pilot tests read its text; here it must be drawn).
            page.keyboard.press("c")
            on = after
            while on == after and time.monotonic() < deadline:
                time.sleep(0.2)
                on = page.screenshot()
            on = settled(page, deadline)  # the title's score, a notice
            page.keyboard.press("]")
            asked = on
            while asked == on and time.monotonic() < deadline:
                time.sleep(0.2)
                asked = page.screenshot()
            asked = settled(page, deadline)
            changed = blank.evaluate(
                CHANGED, [base64.b64encode(on).decode(), base64.b64encode(asked).decode()]
            )
            assert changed > 5_000, f"] changed {changed} pixels: no question drawn?"
        finally:
            browser.close()
