"""The lab's safety rules: nothing in the root namespace, nothing left behind, ever.

Each test runs `python -m tui.cli lab …` (what `kubehop lab …` runs) as a
subprocess, so a signal hits a real run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sim.lab.netns import lab_netns, netns_pids, run_id_of
from sim.lab.state import state_dir
from tests.lab.support import ROOT, lab_command, lab_env, require_lab, root_snapshot


def _run_of(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The run id of the lab a subprocess is building, once its state file exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in state_dir().glob("lab-*.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state.get("pid") == proc.pid:
                return str(state["run_id"])
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no lab state file for pid {proc.pid}: {proc.communicate()}")


def _netns_of(run_id: str) -> list[str]:
    return [n for n in lab_netns() if run_id_of(n) == run_id]


def _wait_for(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        lab_command(*args),
        cwd=ROOT,
        env=lab_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_gone(run_id: str) -> None:
    assert _netns_of(run_id) == []
    assert not (state_dir() / f"lab-{run_id}.json").exists()


@pytest.mark.lab
def test_a_lab_run_leaves_the_root_namespace_as_it_found_it() -> None:
    require_lab()
    before = root_snapshot()
    done = subprocess.run(
        lab_command("verify"), cwd=ROOT, env=lab_env(), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    after = root_snapshot()
    assert "checks agree" in done.stdout, done.stderr
    for key in before:
        assert after[key] == before[key], f"the lab changed the root namespace's {key}"


@pytest.mark.lab
def test_sigterm_during_verify_removes_everything() -> None:
    require_lab()
    proc = _start("verify", "--flows", "200")
    run_id = _run_of(proc)
    # Half-way: the listeners are running inside the run's namespaces.
    _wait_for(
        lambda: any(netns_pids(n) for n in _netns_of(run_id) if "-p-" in n),
        30,
        "the listeners to start",
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        "kubehop lab: interrupted; everything this run made is removed"
    )
    _assert_gone(run_id)


@pytest.mark.lab
def test_ctrl_c_during_up_removes_everything() -> None:
    require_lab()
    proc = _start("up", "--cluster", str(_generated_file()))
    run_id = _run_of(proc)
    _wait_for(lambda: len(_netns_of(run_id)) >= 3, 30, "some namespaces to exist")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # it finished first: take the lab down instead
        subprocess.run(lab_command("down"), cwd=ROOT, env=lab_env(), timeout=60, check=True)
    else:
        assert proc.returncode == 130, err
    _assert_gone(run_id)


@pytest.mark.lab
def test_lab_down_sweeps_a_killed_run_and_its_processes() -> None:
    require_lab()
    proc = _start("verify", "--flows", "200")
    run_id = _run_of(proc)
    _wait_for(
        lambda: any(netns_pids(n) for n in _netns_of(run_id) if "-p-" in n),
        30,
        "the listeners to start",
    )
    listeners = [p for n in _netns_of(run_id) for p in netns_pids(n)]
    proc.kill()  # SIGKILL: no cleanup at all
    proc.communicate(timeout=30)
    assert _netns_of(run_id), "SIGKILL left nothing behind to sweep?"
    done = subprocess.run(
        lab_command("down"), cwd=ROOT, env=lab_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run_id in done.stdout
    _assert_gone(run_id)
    for pid in listeners:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _generated_file() -> Path:
    from sim.cluster.generate import generate

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubehop-lab-test-{os.getpid()}.json"
    path.write_text(generate(3, 9, 10, 12))
    return path


def test_missing_tools_are_one_line_and_exit_2(tmp_path: Path) -> None:
    # No `ip` on PATH (and, when not root, not root either): one line, status 2.
    env = {**lab_env(), "PATH": str(tmp_path)}
    done = subprocess.run(
        lab_command("up"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kubehop lab: error: the lab needs"), lines
    assert done.stdout == ""
