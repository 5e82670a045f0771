"""Shared by the lab tests (imported by them; not a pytest conftest): skip-or-fail, snapshots.

A lab test needs root, Linux and iproute2/iptables/conntrack. Elsewhere it
skips with the reason; when CI=true a skip would hide a broken lab, so it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.errors import KubehopError
from sim.lab.netns import check_host
from tests import paths

ROOT = paths.ROOT
"""The repository root (the lab subprocesses run from here)."""


def lab_unavailable() -> str | None:
    """Why the lab cannot run on this machine, or None."""
    try:
        check_host()
    except KubehopError as err:
        return str(err)
    return None


def require_lab() -> None:
    """Skip the test when the lab cannot run, or fail it when CI=true."""
    reason = lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"lab test cannot run in CI: {reason}")
    pytest.skip(f"lab test needs root, Linux and iproute2/iptables/conntrack: {reason}")


def lab_command(*args: str) -> list[str]:
    """`python -m tui.cli lab ARGS…` (what `kubehop lab ARGS…` runs) with this interpreter."""
    return [sys.executable, "-m", "tui.cli", "lab", *args]


def lab_env() -> dict[str, str]:
    """The environment of a lab subprocess: the repo importable."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.tcp_synack_retries",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
)


def _out(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


def root_snapshot() -> dict[str, str]:
    """What the lab must never change in the root namespace."""
    snap = {
        "links": _out(["ip", "-o", "link"]),
        "addrs": _out(["ip", "-o", "addr"]),
        "routes": _out(["ip", "route", "show", "table", "all"]),
        "rules": _out(["ip", "rule"]),
        "neigh": _out(["ip", "-o", "neigh", "show", "nud", "permanent"]),
        "iptables": "\n".join(
            line for line in _out(["iptables-save"]).splitlines() if not line.startswith("#")
        ),
        "nft": _out(["nft", "list", "ruleset"]),
    }
    for key in _SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        snap[key] = path.read_text() if path.exists() else "(absent)"
    # Interface counters and states change by themselves: keep names and flags only.
    snap["links"] = "\n".join(line.split(" link/")[0] for line in snap["links"].splitlines())
    return snap
