"""`kubehop trace --questions`: challenge mode's questions as an answer key after the trace."""

from __future__ import annotations

import pytest

from tui.cli import run


def test_the_answer_key_follows_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["trace", "client", "10.0.0.12:30080", "--seed", "1", "--questions"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    summary, _, key = out.partition("\nquestions (challenge mode):\n\n")
    assert summary.rstrip().endswith("  outcome: DELIVERED (192.168.3.3:8080)")
    lines = key.splitlines()
    second = lines.index(next(line for line in lines if line.startswith("2. ")))
    assert lines[second : second + 6] == [
        "2. before hop 5: The packet to 10.0.0.12:30080 reaches node-b PREROUTING. Which"
        " destination does it carry after this hop?",
        "   a) 192.168.3.3:8080",
        "   b) 10.0.0.12:8080",
        "   c) 10.0.0.12:30080",
        "   answer: a) 192.168.3.3:8080. DNAT in KUBE-SEP-5MUG4P5DJAELKTMT #2: destination"
        " 10.0.0.12:30080 → 192.168.3.3:8080, an endpoint of default/web, the only endpoint"
        " (KUBE-SVC-LOLE4ISW44XBNF3G #2); KUBE-MARK-MASQ sets mark 0x4000, to masquerade the"
        " packet on its way out: the request came in through an external address or NodePort"
        " (KUBE-EXT-LOLE4ISW44XBNF3G #1): the source is replaced so the endpoint's reply"
        " returns through this node, where conntrack can undo the DNAT. The other endpoints"
        " could have been chosen as well; conntrack remembers this choice for every later"
        " packet of the connection.",
        "",
    ]
    assert sum(line[:2].rstrip(".").isdigit() for line in key.splitlines()) >= 3


def test_questions_do_not_spoil_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["trace", "pod1", "svc-b:80", "--json", "--questions"]) == 2
    assert capsys.readouterr().err == (
        "kubehop: error: --questions prints an answer key after the text or Markdown trace; with"
        " --format json it would spoil the output (run it again without one of them)\n"
    )
