"""Start-up: the app opens without the YAML readers, and leaves nothing switched off."""

from __future__ import annotations

import subprocess
import sys

from tests import paths


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
