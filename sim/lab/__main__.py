"""`python -m sim.lab up|verify|down`: the lab without the app (what the tests run)."""

from __future__ import annotations

import argparse
import sys

from sim.lab.command import add_lab_parser, run_lab


def main() -> int:
    """Parse `lab`'s arguments as `kubehop lab` would and run it."""
    parser = argparse.ArgumentParser(prog="kubehop")
    parser.add_argument("--cluster", metavar="FILE", help="cluster file")
    add_lab_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", *sys.argv[1:]])
    return run_lab(args)


if __name__ == "__main__":
    sys.exit(main())
