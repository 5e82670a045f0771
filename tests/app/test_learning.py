"""What a learner needs next (issue 13): the scenario's headline and goal, jumps between
decisions, the summary at the end, challenge mode and deep links, driven by keys."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import OptionList

from sim.cluster.load import demo_cluster
from tests.app.support import make_app, notices, scenario, screen_of, shown
from tui.app import KubehopApp
from tui.screens.question import QuestionScreen
from tui.screens.summary import SummaryScreen
from tui.session import Request, presets
from tui.widgets.explanation import Explanation
from tui.widgets.key_footer import KeyFooter

HEADLINE_3 = "Scenario 3 — a pod calls a Service whose endpoint is on another node"


def question_of(app: KubehopApp) -> QuestionScreen:
    screen = app.screen
    assert isinstance(screen, QuestionScreen), f"no question on screen but {screen!r}"
    return screen


def summary_of(app: KubehopApp) -> SummaryScreen:
    screen = app.screen
    assert isinstance(screen, SummaryScreen), f"no summary on screen but {screen!r}"
    return screen


def on_screen(app: KubehopApp) -> str:
    """The text of the topmost screen's widgets (a dialog's, over the trace), as shown."""
    return "\n".join(shown(widget) for widget in app.screen.query("Static, OptionList"))


def words(text: str) -> str:
    """`text` with its lines joined (wrapped sentences read whole)."""
    return " ".join(text.split())


async def test_a_scenarios_title_is_its_headline_and_its_goal_is_said_at_the_first_hop() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        assert screen.title == HEADLINE_3
        explanation = shown(screen.query_one(Explanation))
        assert explanation.startswith("Goal: Follow the DNAT on the sender's node")
        await pilot.press("n")
        assert "Goal:" not in shown(screen.query_one(Explanation))
        assert screen.title == HEADLINE_3


async def test_a_request_of_ones_own_keeps_the_request_as_its_title() -> None:
    app = make_app(Request("pod1", "svc-b:80"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        assert screen.title == "pod1 → svc-b:80"
        assert "Goal:" not in shown(screen.query_one(Explanation))


async def test_the_footer_keeps_quit_at_80_columns() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = shown(app.screen.query_one(KeyFooter))
        assert "q Quit" in footer and "m Mode" in footer and footer.rstrip().endswith("^p palette")


async def test_the_bracket_keys_jump_between_decisions() -> None:
    """Scenario 3's decisions: hop 3 pod1's route, hop 5 the DNAT, hop 6 the bridge…"""
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("right_square_bracket")
        assert screen.index + 1 == 3
        await pilot.press("right_square_bracket")
        assert screen.index + 1 == 5
        assert shown(screen.query_one(Explanation)).startswith(
            "◆ DNAT  DNAT in KUBE-SEP-UGY2AY7XLGRWURZI #2"
        )
        await pilot.press("right_square_bracket")
        assert screen.index + 1 == 6
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert screen.index + 1 == 3
        await pilot.press("left_square_bracket")
        assert screen.index == 2  # no decision before hop 3: it stays
        assert notices(app)[-1] == "No decision before this hop."


async def test_the_jump_keys_are_in_the_help_and_the_palette() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        described = {b.description for b in screen_of(app).key_bindings()}  # type: ignore[union-attr]
        for words in ("Next decision", "Previous decision", "Summary of the trace"):
            assert words in described
        commands = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Next decision", "Previous decision", "Summary of the trace"} <= commands
        await pilot.press("question_mark")
        await pilot.pause()
        text = on_screen(app)
        assert "]        Next decision" in text and "[        Previous decision" in text


async def test_the_summary_says_where_nat_happened_and_jumps_to_its_hop() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("S")
        await pilot.pause()
        summary = summary_of(app)
        text = on_screen(app)
        assert "Outcome: DELIVERED (192.168.2.2:8080)" in text
        assert "Nodes: node-a → node-b" in text
        assert "hop 5: DNAT on node-a, 10.101.100.102:80 → 192.168.2.2:8080" in text
        assert "hop 33: conntrack reverses the DNAT on node-a" in text
        assert "KUBE-SEP-UGY2AY7XLGRWURZI #2" in text
        # The second line is the reversal: Enter shows hop 33.
        summary.query_one(OptionList).highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and screen.index + 1 == 33


async def test_stepping_onto_the_last_hop_opens_the_summary_once() -> None:
    app = make_app(scenario("1"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        trace = screen.trace
        assert trace is not None
        await pilot.press(*["n"] * (len(trace.hops) - 1))
        await pilot.pause()
        summary_of(app)
        text = on_screen(app)
        assert "Nodes: none: the packets never left pod/default/pod1" in text
        assert "NAT: none" in text
        await pilot.press("escape", "b", "n")
        await pilot.pause()
        assert app.screen is screen  # once a trace


async def test_challenge_asks_before_the_hop_keeps_the_score_and_reveals() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("c")
        assert screen.title == f"Challenge 0/0 · {HEADLINE_3}"
        await pilot.press("n")  # hop 2 asks nothing
        await pilot.press("n")  # hop 3 is pod1's route: asked first
        await pilot.pause()
        asked = question_of(app)
        assert screen.index == 1  # not shown yet
        text = words(on_screen(app))
        assert "pod/default/pod1 sends to 10.101.100.102. Which device does its route take?" in text
        right = asked.question.answer
        await pilot.press(str(right + 1))
        await pilot.pause()
        assert screen.title == f"Challenge 1/1 · {HEADLINE_3}"
        assert "✔ Right." in on_screen(app)
        assert "eth0: pod1 routes 10.101.100.102 by its default route" in words(on_screen(app))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and screen.index + 1 == 3
        # Hop 5, the DNAT: two questions before it, the chain and the address.
        await pilot.press("n", "n")
        await pilot.pause()
        chain = question_of(app)
        assert chain.question.kind == "chain"
        assert "Which chain does it jump to?" in words(on_screen(app))
        wrong = (chain.question.answer + 1) % len(chain.question.choices)
        await pilot.press(str(wrong + 1))
        await pilot.pause()
        assert screen.title == f"Challenge 1/2 · {HEADLINE_3}"
        assert f"✘ Not quite: the answer is {chain.question.answer + 1}." in on_screen(app)
        await pilot.press("enter")
        await pilot.pause()
        assert question_of(app).question.kind == "dnat"
        assert "Which destination does it carry after this hop?" in words(on_screen(app))
        await pilot.press("escape")  # skipped: not scored
        await pilot.pause()
        assert app.screen is screen
        assert screen.index + 1 == 5
        assert screen.title == f"Challenge 1/2 · {HEADLINE_3}"
        await pilot.press("b", "n")  # a hop once shown is not asked again
        await pilot.pause()
        assert app.screen is screen and screen.index + 1 == 5
        await pilot.press("c")
        assert screen.title == HEADLINE_3


async def test_arrows_and_enter_answer_too() -> None:
    app = make_app(scenario("2"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("c", "right_square_bracket")
        await pilot.pause()
        asked = question_of(app)
        choices = asked.query_one(OptionList)
        assert choices.highlighted == 0
        await pilot.press(*["down"] * asked.question.answer, "enter")
        await pilot.pause()
        assert asked.choice == asked.question.answer
        assert str(screen.title).startswith("Challenge 1/1 · Scenario 2")


@pytest.mark.parametrize("key", [p.key for p in presets()])
async def test_every_scenario_asks_three_questions_or_more(key: str) -> None:
    """Answering each question right all through the trace, in challenge mode."""
    app = make_app(scenario(key))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        trace = screen.trace
        assert trace is not None
        await pilot.press("c")
        for _ in range(len(trace.hops) * 2):
            top = app.screen
            if isinstance(top, QuestionScreen):
                await pilot.press(str(top.question.answer + 1), "enter")
            elif isinstance(top, SummaryScreen):
                break
            else:
                await pilot.press("n")
            await pilot.pause()
        assert isinstance(app.screen, SummaryScreen)  # the end, after the last question
        assert screen.asked >= 3
        assert screen.right == screen.asked == len(screen.questions)
        asked = screen.asked
        assert f"Challenge: {asked} of {asked} answered right" in on_screen(app)


async def test_playing_stops_at_a_question_and_goes_on_after_it() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("c", "greater_than_sign", "greater_than_sign", "greater_than_sign")
        await pilot.press("space")
        for _ in range(100):
            if isinstance(app.screen, QuestionScreen):
                break
            await pilot.pause(0.05)
        asked = question_of(app)
        assert screen.index == asked.question.before - 1
        await pilot.press(str(asked.question.answer + 1), "enter")
        await pilot.pause()
        # The hop asked about is shown, and playing goes on past it.
        assert screen.furthest >= asked.question.before
        assert screen.player.playing or screen.index > asked.question.before


async def test_a_deep_link_opens_the_scenario_at_its_hop() -> None:
    app = KubehopApp(demo_cluster(), request=scenario("3"), step=7, theme="textual-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        assert screen.index + 1 == 7
        assert screen.title == HEADLINE_3
        assert screen.furthest + 1 == 7  # the log lists the hops up to it


async def test_a_deep_links_seed_keeps_the_scenario_and_a_step_past_the_end_shows_the_last() -> (
    None
):
    request = Request("pod1", "svc-b:80", seed=5, pick="192.168.2.2:8080")
    app = KubehopApp(demo_cluster(), request=request, step=999, theme="textual-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        trace = screen.trace
        assert trace is not None and trace.seed == 5
        assert screen.title == HEADLINE_3
        assert screen.index == len(trace.hops) - 1
        assert (
            notices(app)[-1]
            == f"--step 999: this trace has {len(trace.hops)} hops; showing the last."
        )


async def test_y_shows_and_copies_the_command_that_reopens_the_hop() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("n", "n", "n", "n", "y")
        command = (
            "kubehop --mode iptables --cni host-gw trace pod1 svc-b:80 --seed 7"
            " --pick 192.168.2.2:8080 --open --step 5"
        )
        assert notices(app)[-1] == command
        assert app.clipboard == command


async def test_the_command_names_the_cluster_file_and_the_mode_switched_to(
    tmp_path: Any,
) -> None:
    app = KubehopApp(
        demo_cluster(),
        request=Request("pod1", "svc-b:80"),
        seed=3,
        theme="textual-dark",
        cluster_files=("my cluster.yaml",),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("m", "y")
        assert app.clipboard == (
            "kubehop --mode nftables --cni host-gw --cluster 'my cluster.yaml' trace pod1"
            " svc-b:80 --seed 3 --open --step 1"
        )


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the command line asked the app to open, the app itself not run."""
    import tui.app
    import tui.cli.dispatch

    opened: list[dict[str, Any]] = []

    def open_app(cluster: Any, **kwargs: Any) -> int:
        opened.append(kwargs)
        return 0

    monkeypatch.setattr(tui.cli.dispatch, "_tty", lambda stream: True)
    monkeypatch.setattr(tui.app, "open_app", open_app)
    return opened


def test_kubehop_scenario_step_opens_the_app_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.cli.dispatch import run

    opened = _opened(monkeypatch)
    assert run(["--scenario", "3", "--step", "7"]) == 0
    assert opened == [{"request": scenario("3"), "step": 7, "cluster_files": ()}]


def test_kubehop_trace_open_opens_the_app_at_that_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.cli.dispatch import run

    opened = _opened(monkeypatch)
    argv = ["trace", "pod1", "svc-b:80", "--seed", "7", "--pick", "192.168.2.2:8080"]
    assert run([*argv, "--open", "--step", "5"]) == 0
    assert opened == [
        {
            "request": Request("pod1", "svc-b:80", seed=7, pick="192.168.2.2:8080"),
            "step": 5,
            "cluster_files": (),
        }
    ]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--step", "3"], "--step K opens the app at a scenario's hop: give --scenario N too"),
        (["trace", "pod1", "svc-b:80", "--step", "3"], "--step 3 opens the app at that hop"),
        (["trace", "pod1", "svc-b:80", "--open", "--json"], "and --json is for printing it"),
    ],
)
def test_deep_link_mistakes_say_what_to_give(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    from tui.cli.dispatch import run

    opened = _opened(monkeypatch)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert error in err and len(err.splitlines()) == 1
    assert opened == []


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("ipvs", "the endpoint chosen for this scenario, not the scheduler"),
        ("iptables", "taken because the endpoint was chosen for this scenario"),
        ("nftables", "(the endpoint chosen for this scenario)"),
    ],
)
async def test_a_scenarios_chosen_endpoint_is_said_in_the_apps_words(mode: str, said: str) -> None:
    """A learner who pressed 3 gave no --pick: the DNAT hop and its question say why the
    endpoint is always the same in the app's words."""
    from sim.cluster.load import with_mode

    app = KubehopApp(
        with_mode(demo_cluster(), mode), request=scenario("3"), seed=7, theme="textual-dark"
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        dnat = screen.session.landmark(screen.trace, "dnat")  # type: ignore[arg-type]
        assert dnat is not None
        screen.go_to(dnat)
        await pilot.pause()
        text = words(shown(screen.query_one(Explanation)))
        assert said in text
        assert "--pick" not in text and "in advance" not in text
        # The DNAT's question, asked before that hop in challenge mode, too.
        await pilot.press("c")
        for _ in range(12):
            await pilot.press("right_square_bracket")
            await pilot.pause()
            top = app.screen
            if isinstance(top, QuestionScreen) and top.question.kind == "dnat":
                await pilot.press(str(top.question.answer + 1))
                await pilot.pause()
                revealed = words(on_screen(app))
                assert "for this scenario" in revealed and "in advance" not in revealed
                return
            if isinstance(top, QuestionScreen):
                await pilot.press("escape")
                await pilot.pause()
        raise AssertionError("no DNAT question asked")


async def test_the_summary_waits_for_the_end_in_challenge_mode() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("c", "S")
        await pilot.pause()
        assert app.screen is screen
        assert notices(app)[-1].startswith("In challenge mode the summary waits for the end")


async def test_challenge_mode_turned_on_before_a_trace_asks_on_the_next() -> None:
    app = make_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        await pilot.press("c")
        assert screen.title == "Challenge 0/0 · kubehop"
        # Scenario 4's first decision, the client's route, asks nothing; its DNAT does.
        await pilot.press("4", "right_square_bracket", "right_square_bracket")
        await pilot.pause()
        asked = question_of(app).question
        assert (asked.before, asked.kind) == (4, "chain")


async def test_playing_to_the_end_opens_the_summary() -> None:
    app = make_app(scenario("1"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*["greater_than_sign"] * 5, "space")
        for _ in range(200):
            if isinstance(app.screen, SummaryScreen):
                break
            await pilot.pause(0.05)
        summary_of(app)


async def test_the_command_after_an_edit_says_the_edits_are_not_in_it() -> None:
    app = make_app(scenario("3"))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = screen_of(app)
        edit = screen.session.plan_scale(screen.session.cluster.pod("default", "pod4"), 1)  # type: ignore[arg-type]
        screen.session.commit(edit)
        await pilot.press("y")
        assert notices(app)[-1].endswith(
            "It traces the cluster as loaded: this session's edits (d, +, −) are not in it."
        )


async def test_the_command_of_a_sized_request_keeps_its_size() -> None:
    """`trace … --size 1400 --open` traced a data segment: its link must not open on a SYN."""
    app = make_app(Request("pod1", "svc-b:80", size=1400))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("y")
        assert app.clipboard == (
            "kubehop --mode iptables --cni host-gw trace pod1 svc-b:80 --seed 7 --size 1400"
            " --open --step 1"
        )
