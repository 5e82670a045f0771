"""Start-up: what the app opens on is what the tutorial file says, and nothing is left switched off."""

from __future__ import annotations

import subprocess
import sys

from sim.cluster.load import DEMO_JSON, demo_cluster, demo_cluster_from_yaml, demo_json
from tests import paths


def test_the_demo_json_is_the_cluster_the_tutorial_yaml_makes() -> None:
    # The clusters, not the texts: a model field added with its default needs no new JSON.
    assert demo_cluster() == demo_cluster_from_yaml(), (
        f"{DEMO_JSON.name} is out of date with demo_cluster.yaml or the model: "
        "run `.venv/bin/python -m sim.cluster.load` to write it again"
    )
    assert demo_json().startswith("{")


def test_the_app_opens_without_yaml_or_the_readers_and_leaves_the_collector_on() -> None:
    # A fresh process, as `kubehop` starts: the app's module, then the demo cluster.
    code = (
        "import gc, sys\n"
        "from tui.app import KubehopApp\n"
        "from tui.session import load_cluster\n"
        "load_cluster(None)\n"
        "print(gc.isenabled(), 'yaml' in sys.modules, 'sim.readers.cluster' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "False", "False"]
