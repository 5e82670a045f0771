"""Where the tests find the repository and their data, wherever a test module sits."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root."""
DATA = ROOT / "tests" / "data"
"""Test data written by the project."""
REAL = DATA / "real"
"""Dumps in the shapes real clusters give."""
DEMO = ROOT / "model" / "demo_cluster.yaml"
"""The built-in demo cluster file."""
