"""`python -m tui.cli …`: the `kubehop` command without its console script (the lab tests run it)."""

from __future__ import annotations

from tui.cli.dispatch import main

if __name__ == "__main__":
    main()
