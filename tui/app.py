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
from textual.reactive import Reactive  # noqa: E402
from textual.screen import Screen  # noqa: E402

from model.cluster import Cluster  # noqa: E402
from model.errors import KubehopError  # noqa: E402
from tui.hopstyle import palette  # noqa: E402
from tui.screens.trace import TraceScreen  # noqa: E402
from tui.session import Request, Session, load_cluster, preset_for  # noqa: E402

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

    # kubehop's theme from the start (its colours are the stylesheet's variables
    # from the first parse): set after Textual's own, in __init__, it would parse
    # every stylesheet a second time and restyle the app before the first frame.
    theme: Reactive[str] = Reactive(DEFAULT_THEME)

    def __init__(
        self,
        cluster: Cluster,
        *,
        request: Request | None = None,
        seed: int | None = None,
        theme: str | None = DEFAULT_THEME,
        step: int | None = None,
        cluster_files: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.session = Session(cluster, seed=seed, cluster_files=cluster_files)
        """The cluster under study."""
        self._request = request
        self._step = step
        if theme is not None and theme != self.theme:
            self.theme = theme
        else:
            # The class Textual gives the app when its theme is set.
            self.add_class(f"-theme-{self.theme}", update=False)
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
        return TraceScreen(self.session, self._request, step=self._step)

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


def run(
    cluster_path: str | None = None,
    *,
    cni: str | None = None,
    mode: str | None = None,
    scenario: str | None = None,
    step: int | None = None,
) -> int:
    """Run the app on the demo cluster, or on the cluster in `cluster_path`, with the CNI
    and kube-proxy mode `cni` and `mode` name instead of the file's when given; with
    `scenario` (`"3"`), open at that scenario's hop `step` (from 1; None: the first).

    Raises `KubehopError` before taking the terminal when the scenario cannot be shown."""
    cluster = load_cluster(Path(cluster_path) if cluster_path else None, cni=cni, mode=mode)
    request = None
    if scenario is not None:
        preset = preset_for(scenario)
        if preset is None:
            raise KubehopError(f"--scenario {scenario}: the scenarios are 1-4")
        if not Session(cluster).has_source(preset.request):
            raise KubehopError(
                f"--scenario {scenario}: the article's scenarios are cast on the demo cluster;"
                f" this cluster has no {preset.request.source} (run kubehop without --cluster)"
            )
        request = preset.request
    files = (cluster_path,) if cluster_path else ()
    return open_app(cluster, request=request, step=step, cluster_files=files)


def open_app(
    cluster: Cluster,
    *,
    request: Request | None = None,
    step: int | None = None,
    cluster_files: tuple[str, ...] = (),
) -> int:
    """Run the app on `cluster` (read from `cluster_files`), showing `request` at hop `step`
    (from 1) when given: where a deep link (`kubehop trace … --open --step K`) lands."""
    app = KubehopApp(cluster, request=request, step=step, cluster_files=cluster_files)
    app.run()
    return app.return_code or 0
