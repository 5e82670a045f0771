"""IPVS mode in the real-kernel lab: it runs only where the kernel has IPVS, else skips saying why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.lab.support import require_lab

pytestmark = pytest.mark.slow


def _modules() -> str:
    path = Path("/proc/modules")
    return path.read_text() if path.exists() else ""


def _root_namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_ipvs_needs_the_kernels_ip_vs_and_never_loads_it() -> None:
    require_lab()
    from sim.lab.ipvs import ipvs_unavailable

    modules_before = _modules()
    namespaces_before = _root_namespaces()
    reason = ipvs_unavailable()
    # The probe leaves nothing behind and loads no module.
    assert _root_namespaces() == namespaces_before
    assert _modules() == modules_before
    if reason is not None:
        assert ("/proc/net/ip_vs" in reason) or ("ipvsadm" in reason)
        if os.path.exists("/proc/net/ip_vs"):
            pytest.fail(f"the host has IPVS, yet the lab namespace says: {reason}")
        pytest.skip(f"IPVS lab checks cannot run here: {reason}")
    # With IPVS present the lab could program the rendered virtual servers; kubehop does not
    # do that yet (see the project's issue on IPVS mode), so this test stops at the probe.
    pytest.skip("the kernel has IPVS, but programming it in the lab is not written yet")
