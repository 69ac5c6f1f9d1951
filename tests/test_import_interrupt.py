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


@pytest.mark.slow
def test_a_real_ctrl_c_while_the_store_is_written(tmp_path):
    """The real command, a real SIGINT the moment DuckDB starts writing (its .wal file appears):
    exit status 130, and the line's count of stored files is what the store holds."""
    import importlib.util
    import subprocess
    import sys
    import time

    spec = importlib.util.spec_from_file_location("bench_import", Path(__file__).parent.parent / "benchmarks"
                                                  / "bench_import.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    files = bench.make_files(tmp_path / "files", 6, 10)
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    wal = db.with_name(db.name + ".wal")
    proc = subprocess.Popen([sys.executable, "-m", "evalsuite.cli", "import", *map(str, files), "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not wal.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("evalsuite: interrupted: ") and "importing again adds the rest" in line
    told = int(line.removeprefix("evalsuite: interrupted: ").split(" ")[0])
    stored = store.read_df(db, "SELECT count(*) AS n FROM runs WHERE source = 'local'").n[0]
    assert told == stored < 6
