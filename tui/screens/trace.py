"""The trace screen: cluster, rules, packet log, inspector and path map of one request.

The screen lays out the panes (a grid when wide, tabs when narrow), shows a
trace and steps it, and declares every key, so the footer, the help screen and
the command palette read them in one place. Its parts each do one job: the
rules pane (`rules_pane`), playing (`player`), cluster edits (`cluster_edit`)
and the real-kernel lab check (`lab_check`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Tab, Tabs
from textual.worker import Worker

from model.errors import KubehopError
from model.trace import Direction, Hop, Trace
from tui.hopstyle import literal
from tui.screens.cluster_edit import ClusterEditor
from tui.screens.lab_check import LabCheck
from tui.screens.player import Player
from tui.screens.rules_pane import RulesPane
from tui.session import Request, Session, Stepper, conntrack_view, presets
from tui.widgets.cluster_tree import ClusterTree
from tui.widgets.explanation import Explanation
from tui.widgets.inspector import PacketInspector
from tui.widgets.key_footer import KeyFooter
from tui.widgets.packet_log import PacketLog
from tui.widgets.path_map import PathMap

if TYPE_CHECKING:
    from tui.screens.pick import PickResult

# The dialogs are imported when first opened (the rules diff by the cluster
# editor): the first screen does not need them, and the diff's RichLog alone
# pulls in rich.pretty and attrs at start-up.

PANES: tuple[tuple[str, str], ...] = (
    ("log", "Hops"),
    ("inspector", "Packet"),
    ("rules-pane", "Rules"),
    ("cluster", "Cluster"),
)
"""(pane id, tab label): the panes, in the order `v` cycles them on a narrow terminal."""


class TraceScreen(Screen[None]):
    """Step one request and its reply through the cluster, watching every rewrite."""

    AUTO_FOCUS = "#log"
    """The packet log has the keys first (focusing it once spares the footer a redraw)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 (Screen declares it)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,right", "step", "Step"),
        Binding("b,left", "back", "Back"),
        # One key, two bindings: the footer says what space does now.
        Binding("space", "play", "Play"),
        Binding("space", "pause", "Pause"),
        Binding("r", "reply", "Reply"),
        Binding("p", "pick", "Pick"),
        # Early, so it stays in an 80-column footer: it lists every other key.
        Binding("question_mark", "help", "Keys"),
        Binding("v", "next_pane", "View"),
        Binding("o", "switch_node", "Node"),
        Binding("slash", "filter", "Filter", show=False),
        Binding("g,home", "start", "Start", show=False),
        Binding("G,end", "end", "End", show=False),
        Binding("greater_than_sign", "faster", "Faster", show=False),
        Binding("less_than_sign", "slower", "Slower", show=False),
        Binding("1", "scenario('1')", "Scenario 1", show=False),
        Binding("2", "scenario('2')", "Scenario 2", show=False),
        Binding("3", "scenario('3')", "Scenario 3", show=False),
        Binding("4", "scenario('4')", "Scenario 4", show=False),
        Binding("d", "delete_pod", "Delete pod", show=False),
        Binding("plus", "scale(1)", "Scale up", show=False),
        Binding("minus", "scale(-1)", "Scale down", show=False),
        Binding("s", "spread", "Send N", show=False),
        Binding("L", "verify", "Check in the lab", show=False),
    ]

    def __init__(self, session: Session, request: Request | None = None) -> None:
        super().__init__()
        self.session = session
        """The cluster and the calls on it."""
        self.request: Request | None = request
        """The request on display."""
        self.trace: Trace | None = None
        """Its trace."""
        self.stepper: Stepper | None = None
        """The cursor over the trace's hops."""
        self.furthest = 0
        """The furthest hop reached, the end of the packet log."""
        self.pane = PANES[0][0]
        """The pane shown on a narrow terminal."""
        self.lab_result: str = ""
        """How the real-kernel lab judged the trace on show ("" until checked)."""
        self.stale = False
        """The trace on show is from before an edit after which its request no longer traces."""
        self.player = Player(self)
        """Plays the trace (space, `<`, `>`)."""
        self.editor = ClusterEditor(self)
        """Deletes and scales pods (`d`, `+`, `-`)."""
        self.lab = LabCheck(self)
        """Checks the trace on show in the real-kernel lab (`L`)."""

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⇄")
        yield Tabs(*(Tab(label, id=f"tab-{pane}") for pane, label in PANES), id="pane-tabs")
        yield PathMap(id="path")
        with Container(id="panes"):
            cluster = ClusterTree(id="cluster", classes="pane")
            cluster.border_title = "Cluster"
            yield cluster
            yield RulesPane(self.session, id="rules-pane", classes="pane")
            inspector = PacketInspector(id="inspector", classes="pane")
            inspector.border_title = "Packet"
            yield inspector
            # The log is the pane shown first on a narrow terminal.
            log = PacketLog(id="log", classes="pane -shown")
            log.border_title = "Packet log"
            yield log
        # The explanation grows with its text up to half the screen, and scrolls
        # past that (Tab focuses it for the arrow keys): a hop's note is where
        # the article and Linux disagree.
        with VerticalScroll(id="explanation-bar"):
            yield Explanation(id="explanation")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one(ClusterTree).show(self.session.cluster)
        self.show_pane(self.pane)
        if self.request is not None:
            self.load(self.request)
        else:
            self.query_one(RulesPane).show(None, None)
            self._update_title()

    def on_resize(self) -> None:
        # The .tcss gives the cluster column 34 cells; past 160 columns it
        # takes half of the extra width (up to 48 cells), so long pod names
        # keep their IPs and NodePorts in view and the rules keep the rest.
        cluster = max(34, min(48, 34 + (self.size.width - 160) // 2))
        grid = self.query_one("#panes").styles
        if grid.grid_columns and grid.grid_columns[0].value != cluster:
            grid.grid_columns = f"{cluster} 1fr 56"

    def show_pane(self, pane: str) -> None:
        """Show `pane` (a PANES id): on a narrow terminal it alone, its tab active."""
        self.pane = pane
        for name, _ in PANES:
            self.query_one(f"#{name}").set_class(name == pane, "-shown")
        tabs = self.query_one(Tabs)
        if tabs.active != f"tab-{pane}":
            tabs.active = f"tab-{pane}"
        if pane == "rules-pane":
            # A pane just shown had no height to scroll in.
            self.query_one(RulesPane).scroll_to_match()

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id is not None:
            self.show_pane(event.tab.id.removeprefix("tab-"))

    @on(RulesPane.Labelled)
    def _rules_labelled(self, event: RulesPane.Labelled) -> None:
        tab = self.query_one("#tab-rules-pane", Tab)
        if str(tab.label) != event.label:
            tab.label = Text(event.label)

    # -- showing a trace ------------------------------------------------------------------

    def load(self, request: Request) -> bool:
        """Trace `request` and show its first hop; on a bad request, say why and keep the old.

        On a big cluster the trace runs in a worker (False until it is shown).
        """
        if self.session.big:
            self.player.stop()
            self.query_one(Explanation).waiting = (
                f"Tracing {request.describe()}: the first trace through a node renders and "
                "parses its kube-proxy rules, which takes a while at this scale…"
            )
            self._trace_in_worker(request)
            return False
        try:
            trace = self.session.trace(request)
        except KubehopError as err:
            self.notify(escape(str(err)), title="Cannot trace", severity="error")
            return False
        self.show_trace(request, trace)
        return True

    @work(thread=True, exclusive=True, group="trace")
    def _trace_in_worker(self, request: Request) -> None:
        try:
            trace = self.session.trace(request)
        except KubehopError as err:
            self.app.call_from_thread(self._trace_failed, str(err))
            return
        self.app.call_from_thread(self.show_trace, request, trace)

    def _trace_failed(self, message: str) -> None:
        self.query_one(Explanation).waiting = ""
        self.notify(escape(message), title="Cannot trace", severity="error")

    def show_trace(self, request: Request, trace: Trace, index: int = 0) -> None:
        """Show `trace` from hop `index`."""
        self.player.stop()
        self.query_one(Explanation).waiting = ""
        self.request = request
        self.trace = trace
        self.lab_result = ""
        self.stale = False
        self.stepper = Stepper(trace)
        self.furthest = self.stepper.seek(index).seq
        self._update_title()
        self._draw()

    def _update_title(self) -> None:
        if self.trace is None or self.request is None:
            self.title = "kubehop"
            keys = "p or 1–4" if all(self.session.has_source(p.request) for p in presets()) else "p"
            self.sub_title = f"{len(self.session.cluster.nodes)} nodes · press {keys}"
            return
        trace = self.trace
        endpoint = f" → {trace.endpoint}" if trace.endpoint else ""
        lab = f" · {self.lab_result}" if self.lab_result else ""
        stale = "⚠ before the last edit · " if self.stale else ""
        self.title = self.request.describe()
        self.sub_title = f"{stale}{trace.verdict.value}{endpoint} · seed {trace.seed}{lab}"

    @property
    def index(self) -> int:
        """The position of the hop on display."""
        return self.stepper.index if self.stepper is not None else 0

    @property
    def hop(self) -> Hop | None:
        """The hop on display."""
        return self.stepper.current if self.stepper is not None else None

    def go_to(self, index: int) -> None:
        """Show hop `index` (clamped to the trace)."""
        if self.stepper is None:
            return
        self.stepper.seek(index)
        self.show_current()

    def show_current(self) -> None:
        """Draw the stepper's current hop."""
        self.furthest = max(self.furthest, self.index)
        self._draw()

    def _draw(self) -> None:
        trace, hop = self.trace, self.hop
        if trace is None or hop is None:
            return
        path = self.query_one(PathMap)
        path.bridge = self.session.cluster.cni.bridge
        path.index = hop.seq
        path.trace = trace
        self.query_one(PacketLog).show(trace, hop.seq, self.furthest)
        self.query_one(PacketInspector).show(hop, conntrack_view(trace, hop.seq))
        explanation = self.query_one(Explanation)
        explanation.trace = trace
        explanation.hop = hop
        self.query_one("#explanation-bar").scroll_home(animate=False)
        self.query_one(RulesPane).show(trace, hop)

    # -- stepping -------------------------------------------------------------------------

    def action_step(self) -> None:
        """Next hop."""
        self.player.stop()
        if self.stepper is not None:
            self.stepper.forward()
            self.show_current()

    def action_back(self) -> None:
        """Previous hop."""
        self.player.stop()
        if self.stepper is not None:
            self.stepper.back()
            self.show_current()

    def action_start(self) -> None:
        """First hop."""
        self.player.stop()
        if self.stepper is not None:
            self.stepper.to_start()
            self.show_current()

    def action_end(self) -> None:
        """Last hop."""
        self.player.stop()
        if self.stepper is not None:
            self.stepper.to_end()
            self.show_current()

    def action_reply(self) -> None:
        """First hop of the reply."""
        self.player.stop()
        if self.stepper is None or self.trace is None:
            return
        if not any(h.direction is Direction.REPLY for h in self.trace.hops):
            self.notify(
                "This request got no reply: " + escape(self.trace.reason), severity="warning"
            )
        self.stepper.to_reply()
        self.show_current()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "play":
            return not self.player.playing
        if action == "pause":
            return self.player.playing
        return True

    def action_play(self) -> None:
        """Play from the current hop."""
        self.player.play()

    def action_pause(self) -> None:
        """Pause playing."""
        self.player.stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "play":  # it ends by itself at the last hop
            self.refresh_bindings()

    def action_faster(self) -> None:
        """Play faster."""
        self.player.change_speed(+1)

    def action_slower(self) -> None:
        """Play slower."""
        self.player.change_speed(-1)

    @on(PacketLog.HopChosen)
    def _hop_chosen(self, event: PacketLog.HopChosen) -> None:
        if event.index != self.index:
            self.player.stop()
            self.go_to(event.index)

    # -- choosing what to trace -----------------------------------------------------------

    def action_scenario(self, key: str) -> None:
        """Load one of the article's scenarios."""
        for preset in presets():
            if preset.key != key:
                continue
            if not self.session.has_source(preset.request):
                missing = escape(literal(preset.request.source))
                why = (
                    f"{missing} is gone: an edit of this session deleted it."
                    if self.session.history
                    else "The article's scenarios are cast on the demo cluster (run kubehop "
                    f"without --cluster); this cluster has no {missing}."
                )
                self.notify(f"{why} Press p to pick a flow.", severity="warning")
                return
            self.load(preset.request)
            return

    def action_pick(self) -> None:
        """Open the pick dialog."""

        from tui.screens.pick import PickScreen

        def picked(result: PickResult | None) -> None:
            if result is None:
                return
            if result.trace is None:
                self.load(result.request)
            else:
                self.show_trace(result.request, result.trace)

        self.app.push_screen(PickScreen(self.session, self.request), picked)

    # -- rules pane -----------------------------------------------------------------------

    def action_switch_node(self) -> None:
        """Show the next node's rules; after the last node, follow the packet again."""
        self.query_one(RulesPane).switch_node()
        self.show_pane("rules-pane")

    def action_filter(self) -> None:
        """Filter the rules by text or chain."""
        self.show_pane("rules-pane")
        self.query_one(RulesPane).open_filter()

    def key_escape(self) -> None:
        self.query_one(RulesPane).close_filter()

    # -- panes on a narrow terminal -------------------------------------------------------

    def action_next_pane(self) -> None:
        """Show the next pane (on a narrow terminal the panes are tabs)."""
        names = [name for name, _ in PANES]
        pane = names[(names.index(self.pane) + 1) % len(names)]
        self.show_pane(pane)
        focus = self.query_one("#rules" if pane == "rules-pane" else f"#{pane}")
        focus.focus()

    # -- editing the cluster --------------------------------------------------------------

    def action_delete_pod(self) -> None:
        """Delete the pod under the cursor in the cluster pane."""
        self.editor.delete_pod()

    def action_scale(self, delta: int) -> None:
        """Scale the ReplicaSet of the pod under the cursor."""
        self.editor.scale(delta)

    def mark_stale(self) -> None:
        """Say in the title that the trace on show predates an edit after which it fails."""
        self.stale = True
        self._update_title()

    def action_spread(self) -> None:
        """Send N requests and chart where they went."""
        if self.request is None:
            self.notify("Pick a request first (p, or 1–4).", severity="warning")
            return
        from tui.screens.spread import SpreadScreen

        request = self.request
        seed = self.trace.seed if self.trace is not None else None
        self.app.push_screen(
            SpreadScreen(
                lambda count, progress: self.session.spread(
                    Request(request.source, request.destination, request.container, seed),
                    count,
                    progress=progress,
                )
            )
        )

    # -- the real-kernel lab --------------------------------------------------------------

    def action_verify(self) -> None:
        """Send the request for real in the lab (`kubehop lab up`) and compare with the trace."""
        self.lab.check()

    def show_lab_result(self, result: str) -> None:
        """Say in the title how the lab judged the trace on show."""
        self.lab_result = result
        self._update_title()

    def action_help(self) -> None:
        """Show the keys."""
        from tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.BINDINGS))
