"""Regenerate screenshots/ (SVG and PNG) from the real app on the demo cluster.

    .venv/bin/python scripts/screenshots.py

PNGs are drawn from the SVGs with cairosvg when it is installed, else with
ImageMagick's `convert`. Textual's SVGs ask for Fira Code; for the PNG the
font is swapped for DejaVu Sans Mono with the letter spacing that makes its
advance match Textual's cell width, so columns line up.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.cluster.load import demo_cluster, with_cni, with_mode  # noqa: E402
from tui.app import KubehopApp  # noqa: E402
from tui.screens.trace import TraceScreen  # noqa: E402
from tui.session import presets  # noqa: E402
from tui.widgets.cluster_tree import ClusterTree  # noqa: E402

OUT = ROOT / "screenshots"
SEED = 7


async def shoot(
    name: str, key: str, state: str, size: tuple[int, int], keys: list[str], dataplane: str = ""
) -> Path:
    """Scenario `key` at its first hop of `state`, `keys` pressed; `dataplane` is kube-proxy's
    mode or the CNI the demo runs instead of iptables and host-gw (`nftables`, `flannel-vxlan`)."""
    request = next(p.request for p in presets() if p.key == key)
    cluster = demo_cluster()
    if dataplane in ("nftables", "ipvs"):
        cluster = with_mode(cluster, dataplane)
    elif dataplane:
        cluster = with_cni(cluster, dataplane)
    app = KubehopApp(cluster, request=request, seed=SEED, theme="tokyo-night")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.trace is not None
        screen.go_to(screen.session.landmark(screen.trace, state) or 0)
        await pilot.pause()
        if keys == ["delete"]:
            tree = screen.query_one(ClusterTree)
            tree.select_pod("default", "pod4")
            tree.focus()
            keys = ["d"]
        for k in keys:
            await pilot.press(k)
        await pilot.pause(0.3)
        if keys == ["s"]:
            # The requests go in a worker: the chart once the last tally is in.
            from tui.screens.spread import SpreadChart

            chart = app.screen.query_one(SpreadChart)
            while chart.sending or chart.spread is None:
                await pilot.pause(0.05)
            await pilot.pause()
        path = OUT / f"{name}.svg"
        app.save_screenshot(str(path))
    return path


def to_png(svg: Path) -> None:
    png = svg.with_suffix(".png")
    text = svg.read_text(encoding="utf-8").replace(
        "Fira Code, monospace", "DejaVu Sans Mono, monospace; letter-spacing: 0.17px"
    )
    try:
        import cairosvg  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        if shutil.which("convert") is None:
            print(
                f"skipped {png.name}: neither cairosvg nor ImageMagick's convert", file=sys.stderr
            )
            return
        patched = svg.with_name(f".{svg.name}")
        patched.write_text(text, encoding="utf-8")
        subprocess.run(["convert", str(patched), str(png)], check=True)
        patched.unlink()
        return
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(png))


SHOTS: tuple[tuple[str, str, str, tuple[int, int], list[str]], ...] = (
    ("scenario3-dnat-wide", "3", "dnat", (160, 48), []),
    ("scenario2-bridge-wide", "2", "bridge", (160, 48), []),
    ("scenario4-nodeport-dnat-wide", "4", "dnat", (160, 48), []),
    ("scenario4-reply-wide", "4", "reply", (160, 48), []),
    ("scenario1-localhost-wide", "1", "reply", (160, 48), []),
    ("scenario3-dnat-120x40", "3", "dnat", (120, 40), []),
    ("scenario3-dnat-80x24", "3", "dnat", (80, 24), []),
    ("scenario3-rules-80x24", "3", "dnat", (80, 24), ["v", "v"]),
    ("scenario3-packet-80x24", "3", "dnat", (80, 24), ["v"]),
    ("pick-dialog", "2", "dnat", (120, 36), ["p"]),
    ("rules-diff-after-delete", "2", "dnat", (120, 36), ["delete"]),
    ("spread", "2", "dnat", (120, 36), ["s"]),
    ("help", "2", "dnat", (120, 40), ["question_mark"]),
    # Challenge mode from the first hop: the route's question skipped, then at the DNAT the
    # chain's skipped too, the address asked.
    (
        "challenge-80x24",
        "3",
        "dnat",
        (80, 24),
        ["c", "right_square_bracket", "escape", "right_square_bracket", "escape"],
    ),
    ("summary", "4", "reply", (120, 36), ["G", "S"]),
)

DATAPLANE_SHOTS: tuple[tuple[str, str, str, tuple[int, int], list[str], str], ...] = (
    ("scenario3-nftables-dnat-wide", "3", "dnat", (160, 48), [], "nftables"),
    ("scenario3-ipvs-dnat-wide", "3", "dnat", (160, 48), [], "ipvs"),
    ("scenario3-nftables-rules-80x24", "3", "dnat", (80, 24), ["v", "v"], "nftables"),
    ("scenario3-flannel-vxlan-encap-wide", "3", "encap", (160, 48), [], "flannel-vxlan"),
    ("scenario3-flannel-vxlan-packet-80x24", "3", "encap", (80, 24), ["v"], "flannel-vxlan"),
)
"""kube-proxy's other modes and a tunnelling CNI, each with the mode or CNI it runs."""


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, key, state, size, keys, dataplane in (
        *((*shot, "") for shot in SHOTS),
        *DATAPLANE_SHOTS,
    ):
        svg = await shoot(name, key, state, size, keys, dataplane)
        to_png(svg)
        print(svg.relative_to(ROOT), svg.with_suffix(".png").relative_to(ROOT))


if __name__ == "__main__":
    asyncio.run(main())
