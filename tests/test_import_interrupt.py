"""Ctrl-C during an import's write stops it with exit status 130 and one truthful line saying what
was stored; it is never taken for a bad file and swallowed. (Issue 20, item 8.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import duckdb
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.io import importer
from evalsuite.store import writes

REAL = Path(__file__).parent / "data" / "lm-eval-files" / "lm-eval-0.3"


def _interrupt_second_write(monkeypatch, interrupt) -> None:
    """The second batch's score insert is interrupted as Ctrl-C interrupts it (`interrupt`)."""
    real, calls = writes.insert, []

    def insert(con, record_type, records, on_key="fail"):
        real(con, record_type, records, on_key)
        if record_type.__name__ == "Score":
            calls.append(1)
            if len(calls) == 2:
                interrupt()

    monkeypatch.setattr(writes, "insert", insert)
    monkeypatch.setattr(importer, "FLUSH_BYTES", 1, raising=False)  # each file its own batch
    monkeypatch.setattr(importer, "BATCH_ROWS", 1, raising=False)  # (as main's importer said it)


def _duckdb_interrupt() -> None:
    # what DuckDB raises when Ctrl-C arrives while it executes (an Exception, not a KeyboardInterrupt)
    raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("interrupt", [_duckdb_interrupt, _sigint], ids=["duckdb", "sigint"])
def test_ctrl_c_during_a_write_stops_the_import_and_says_what_was_stored(tmp_path, capsys, monkeypatch, interrupt):
    db = tmp_path / "store.duckdb"
    _interrupt_second_write(monkeypatch, interrupt)
    assert main(["import", str(REAL), "--db", str(db)]) == 130
    out, err = capsys.readouterr()
    stored = store.read_df(db, "SELECT count(*) AS n FROM scores WHERE source = 'local'").n[0]
    assert out == "" and err.splitlines()[-1] == (
        f"evalsuite: interrupted: 1 file stored whole before the stop ({stored} scores, 0 samples), nothing "
        "of the others; importing again adds the rest")
    assert store.read_df(db, "SELECT count(DISTINCT run_id) AS n FROM runs WHERE source = 'local'").n[0] == 1
    monkeypatch.undo()
    assert main(["import", str(REAL), "--db", str(db)]) == 0  # the rest, and the stored one found stored
    assert capsys.readouterr().out.startswith(f"imported {len(list(REAL.glob('*.json'))) - 1} files (")
