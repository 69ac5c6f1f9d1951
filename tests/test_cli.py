"""The command line itself: `evalsuite --help` stays instant (no heavy imports at start-up)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "lm_eval", "transformers", "streamlit", "duckdb", "pandas", "datasets", "ray")


def test_help_imports_nothing_heavy():
    code = ("import sys; from evalsuite.cli import build_parser; build_parser().format_help(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "evalsuite", "--help"], capture_output=True, text=True, check=True)
    assert "{run,watch,ls,items,compare,stats,export,import,dashboard}" in out.stdout


def test_first_line_of_a_library_error_even_an_empty_one():
    from evalsuite.errors import first_line

    assert first_line(ValueError("  truncated file\nTraceback ...\n")) == "truncated file"
    assert first_line(RuntimeError("")) == ""  # some libraries raise with no message at all
