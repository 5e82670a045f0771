"""Editing the cluster from the trace screen: plan an edit, commit it, show what it changed.

A pod is deleted, or its ReplicaSet scaled; the screen then shows the edited
cluster, retraces the request on show with the same seed at the same hop, and
the rules diff dialog opens on what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from rich.markup import escape

from model.cluster import Pod
from model.errors import KubehopError
from tui.hopstyle import literal
from tui.session import Edit, Request

if TYPE_CHECKING:
    from tui.screens.trace import TraceScreen


class ClusterEditor:
    """The trace screen's cluster edits, one flow from the pod to the rules diff.

    An edit acts on the pod under the cluster pane's cursor, and only once the
    user can see it. On a big cluster the edit is planned in a worker thread of
    the screen (group "edit"), since comparing a big node's rules before and
    after takes seconds; a plan made on a cluster that changed meanwhile is
    dropped, not committed.
    """

    def __init__(self, screen: TraceScreen) -> None:
        self._screen = screen

    async def delete_pod(self) -> None:
        """Delete the pod under the cursor (its ReplicaSet, if any, replaces it)."""
        pod = await self._pod_to_edit(
            "Put the cursor on a pod in the cluster pane, then press d.", "d"
        )
        if pod is None:
            return
        session, seed = self._screen.session, self._screen.session.generation
        self._edit(lambda: session.plan_delete(pod, seed=seed))

    async def scale(self, delta: int) -> None:
        """Scale the ReplicaSet that owns the pod under the cursor by `delta` replicas."""
        pod = await self._pod_to_edit(
            "Put the cursor on a pod owned by a ReplicaSet, then press + or −.",
            "+" if delta > 0 else "−",
        )
        if pod is None:
            return
        session, seed = self._screen.session, self._screen.session.generation
        self._edit(lambda: session.plan_scale(pod, delta, seed=seed))

    async def _pod_to_edit(self, missing: str, key: str) -> Pod | None:
        """The pod under the cluster pane's cursor, if the user can see it.

        Without one, show the cluster pane and say `missing`; with one out of
        sight, show it and ask for `key` again.
        """
        screen = self._screen
        pod = screen.cluster_tree.selected_pod
        if pod is None:
            await screen.show_pane("cluster")
            screen.notify(missing, severity="warning")
            return None
        if not await self._cluster_in_view(
            f"{literal(pod.name)} is under the cursor: press {key} again"
        ):
            return None
        return pod

    async def _cluster_in_view(self, prompt: str) -> bool:
        """Whether the cluster pane is on screen; if not, show it and say `prompt`.

        On a narrow terminal the tree's cursor is out of sight in another tab:
        an edit acts only on a pod the user can see.
        """
        screen = self._screen
        if not screen.narrow or screen.pane == "cluster":
            return True
        await screen.show_pane("cluster")
        screen.notify(escape(prompt), title="Cluster")
        return False

    def _edit(self, plan: Callable[[], Edit]) -> None:
        """Plan an edit and apply it; on a big cluster, plan it in a worker thread."""
        screen = self._screen
        if screen.session.big:
            # Comparing a big node's rules before and after takes seconds.
            screen.notify("Rendering the node's rules before and after the edit…", title="Editing")
            screen.run_worker(
                partial(self._plan_in_worker, plan),
                name="_plan_in_worker",
                group="edit",
                exclusive=True,
                thread=True,
            )
            return
        try:
            edit = plan()
        except KubehopError as err:
            screen.notify(escape(str(err)), severity="error")
            return
        self._commit(edit)

    def _plan_in_worker(self, plan: Callable[[], Edit]) -> None:
        app = self._screen.app
        try:
            edit = plan()
        except KubehopError as err:
            app.call_from_thread(self._screen.notify, escape(str(err)), severity="error")
            return
        app.call_from_thread(self._commit, edit)

    def _commit(self, edit: Edit) -> None:
        screen = self._screen
        if edit.generation != screen.session.generation:
            screen.notify(
                "The cluster changed meanwhile; the edit was dropped.", severity="warning"
            )
            return
        screen.session.commit(edit)
        self._after_edit()
        self._show_diff(edit)

    def _show_diff(self, edit: Edit) -> None:
        if not edit.diffs:  # a pod no Service selects: nothing to compare
            self._screen.notify(
                escape(f"{edit.summary}; no node's rules changed."), title="Cluster"
            )
            return
        from tui.screens.diff import RulesDiffScreen  # its RichLog is slow to import

        self._screen.app.push_screen(RulesDiffScreen(edit))

    def _after_edit(self) -> None:
        """Show the edited cluster, and the request on show retraced at the same hop."""
        screen = self._screen
        # The diff dialog opening now says what changed: no toast over it,
        # nor the "press d again" that led here.
        screen.app.clear_notifications()
        screen.cluster_tree.show(screen.session.cluster)
        if screen.request is not None and screen.trace is not None:
            # The same seed again: what differs in the next trace is the edit's doing.
            request = Request(
                screen.request.source,
                screen.request.destination,
                screen.request.container,
                screen.trace.seed,
                screen.request.pick,
            )
            try:
                trace = screen.session.trace(request)
            except KubehopError as err:
                screen.notify(
                    escape(f"The current request no longer traces: {err}"), severity="warning"
                )
                screen.mark_stale()
                screen.redraw_rules()
                return
            screen.show_trace(screen.request, trace, screen.index, retrace=True)
        else:
            screen.redraw_rules()
