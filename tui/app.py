"""kubehop's Textual app: watch a request cross a Kubernetes cluster, hop by hop."""

from __future__ import annotations

import gc

# Importing Textual, pydantic's models and the simulator makes some 300,000
# objects that live as long as the app and hold next to no garbage cycles. With
# the collector on, it walks them all again at every full collection while they
# are being made: about a tenth of start-up. So it is off while they are imported,
# and then they are frozen (never scanned again) and it is back on.
_collecting = gc.isenabled()
gc.disable()

from collections.abc import Iterable  # noqa: E402
from dataclasses import replace  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path, PurePath  # noqa: E402
from typing import ClassVar  # noqa: E402

from rich.markup import escape  # noqa: E402
from textual.app import App, SystemCommand  # noqa: E402
from textual.binding import Binding, BindingType  # noqa: E402
from textual.screen import Screen  # noqa: E402

from model.cluster import Cluster  # noqa: E402
from tui.hopstyle import palette  # noqa: E402
from tui.screens.trace import TraceScreen  # noqa: E402
from tui.session import Request, Session, load_cluster  # noqa: E402

gc.freeze()
if _collecting:
    gc.enable()

DEFAULT_THEME = "tokyo-night"
"""The theme kubehop opens with (any Textual theme works; ctrl+p changes it)."""


class KubehopApp(App[int]):
    """One screen: cluster, rules, packet log, inspector, path map, explanation."""

    TITLE = "kubehop"
    CSS_PATH: ClassVar[list[str | PurePath] | str | PurePath | None] = ["app.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(
        self,
        cluster: Cluster,
        *,
        request: Request | None = None,
        seed: int | None = None,
        theme: str | None = DEFAULT_THEME,
    ) -> None:
        super().__init__()
        self.session = Session(cluster, seed=seed)
        """The cluster under study."""
        self._request = request
        if theme is not None:
            self.theme = theme
        # The modules, the classes and the cluster (millions of objects at the
        # scale limits) live as long as the app and hold no garbage cycles.
        # Frozen, the cyclic collector stops rescanning them: start-up is ~50 ms
        # shorter and a step on the big cluster never waits for a full collection.
        gc.freeze()

    def get_css_variables(self) -> dict[str, str]:
        # kubehop's colours are theme variables, so the app's stylesheet and
        # every widget's DEFAULT_CSS see them (and a theme may still set them).
        variables = super().get_css_variables()
        variables = {**palette(variables), **variables}
        self.theme_variables = variables
        return variables

    def get_default_screen(self) -> Screen[None]:
        return TraceScreen(self.session, self._request)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Textual's own "Keys" opens a side panel that squeezes an 80-column
        # screen; `?` (below, from the bindings) lists every key instead.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")
        # Every key of the trace screen is a command too, from the same declarations.
        if isinstance(screen, TraceScreen):
            for binding in screen.key_bindings():
                if isinstance(binding, Binding) and binding.description:
                    # The first key, as the footer shows it ("?", not "question_mark").
                    key = self.get_key_display(replace(binding, key=binding.key.split(",")[0]))
                    yield SystemCommand(
                        binding.description,
                        f"key {escape(key)}",
                        partial(screen.run_action, binding.action),
                    )


def run(cluster_path: str | None = None, *, cni: str | None = None, mode: str | None = None) -> int:
    """Run the app on the demo cluster, or on the cluster in `cluster_path`, with the CNI
    and kube-proxy mode `cni` and `mode` name instead of the file's when given."""
    cluster = load_cluster(Path(cluster_path) if cluster_path else None, cni=cni, mode=mode)
    app = KubehopApp(cluster)
    app.run()
    return app.return_code or 0
