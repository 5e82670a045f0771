"""The real-kernel lab: the cluster's network in Linux network namespaces, checked against kubehop.

`kubehop lab up` builds it (`build`), `kubehop lab verify` sends real traffic
and compares with the traces (`verify`), `kubehop lab down` removes it; the
command line (`tui/cli/lab.py`) drives this library. The app calls
`verify_trace` to check the trace on screen. Nothing here touches
the root network namespace: see `sim.lab.netns`.
"""

from __future__ import annotations

from sim.lab.failures import LabError, LabUnavailable, NoLabRunning
from sim.lab.verify import Check, verify_trace

__all__ = ["Check", "LabError", "LabUnavailable", "NoLabRunning", "verify_trace"]
