"""The command line itself: `evalsuite --help` stays instant (no heavy imports at start-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("argv, line", [
    (["run", "--limit", "3000000000"], "bad --limit 3000000000: documents per task, from 1 to 2,147,483,647"),
    (["run", "--limit", "0"], "bad --limit 0: documents per task, from 1 to 2,147,483,647"),
    (["run", "--limit", "ten"], "bad --limit 'ten': a whole number (documents per task)"),
    (["run", "--shots", "3000"], "bad --shots 3000: few-shot examples, from 0 to 1,000"),
    (["run", "--shots", "-1"], "bad --shots -1: few-shot examples, from 0 to 1,000"),
    (["run", "--batch-size", "0"], "bad --batch-size '0': auto, auto:N or a whole number from 1 to 2,147,483,647"),
    (["run", "--batch-size", "99999999999"],
     "bad --batch-size '99999999999': auto, auto:N or a whole number from 1 to 2,147,483,647"),
    (["run", "--tokens-per-step", "9223372036854775808"],
     "bad --tokens-per-step 9223372036854775808: tokens one training step consumed, from 1 to "
     "9,223,372,036,854,775,807"),
    (["run", "--model", "my-run", "--model-path", "{checkpoints}", "--tokens-per-step", "9223372036854775807"],
     "bad --tokens-per-step 9223372036854775807: my-run's last checkpoint would have seen "
     "27,670,116,110,564,327,421,000 tokens, more than the store keeps (9,223,372,036,854,775,807)"),
    (["run", "--model", "pythia-70m", "--steps", "3000000000"],
     "bad step '3000000000': at most 2,147,483,647 (what the store keeps)"),
    (["run", "--model", "pythia-70m", "--steps", "0:2000000000:1"],
     "step 3 is not a checkpoint; valid steps: 0, 1, 2, 4 ... 512, then 1000 ... 143000 every 1000"),
    (["items", "--model", "pythia-70m", "--task", "piqa", "--shots", "99999999999"],
     "bad --shots 99999999999: few-shot examples, from 0 to 1,000"),
    (["compare", "pythia-70m", "pythia-160m", "--shots", "x"], "bad --shots 'x': a whole number (few-shot examples)"),
    (["stats", "--last", "1"], "bad --last 1: checkpoints a model's noise is measured over, from 2 to 2,147,483,647"),
    (["import", "x.json", "--step", "-1"], "bad --step -1: a checkpoint's training step, from 0 to 2,147,483,647"),
    (["import", "x.json", "--max-file-mb", "nan"], "bad --max-file-mb nan: give a size in MB above 0"),
    (["dashboard", "--port", "70000"], "bad --port 70000: a TCP port, from 1 to 65,535"),
    (["run", "--ray", "local", "--workers", "0"], "bad --workers 0: Ray workers, from 1 to 100,000"),
    (["watch", "d", "--model", "m", "--interval", "inf"], "bad --interval inf: give seconds above 0, at most 86,400"),
    (["watch", "d", "--model", "m", "--interval", "0"], "bad --interval 0.0: give seconds above 0, at most 86,400"),
    (["watch", "d", "--model", "m", "--until", "3000000000"],
     "bad --until 3000000000: a checkpoint's training step, from 0 to 2,147,483,647"),
])
def test_numbers_are_checked_where_they_enter(argv, line, tmp_path, capsys, checkpoints):
    """Before any work: one line, exit 2 (not a traceback after a checkpoint was evaluated)."""
    from evalsuite.cli import main

    db = tmp_path / "s.duckdb"
    argv = [a.replace("{checkpoints}", str(checkpoints)) for a in argv]
    assert main([*argv, "--db", str(db)]) == 2
    assert capsys.readouterr().err == f"evalsuite: error: {line}\n"
    assert not db.exists()  # nothing was started


@pytest.mark.parametrize("argv", [
    ["ls"], ["items", "--model", "pythia-70m", "--task", "piqa"], ["compare", "pythia-70m", "pythia-160m"],
    ["stats"], ["export"], ["export", "--format", "samples", "--out", "{tmp}/samples.jsonl"],
])
def test_every_reading_command_on_a_missing_store_says_so_in_one_line(argv, tmp_path, capsys):
    """A mistyped --db is an error for every command that reads, and makes no file."""
    from evalsuite.cli import main

    db = tmp_path / "typo.duckdb"
    assert main([*(a.replace("{tmp}", str(tmp_path)) for a in argv), "--db", str(db)]) == 2
    assert capsys.readouterr().err == (f"evalsuite: error: no store at {db}: run 'evalsuite run' or "
                                       "'evalsuite import' first\n")
    assert sorted(tmp_path.iterdir()) == []
