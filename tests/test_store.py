"""The store: atomic job commits, no double counting, a reader beside a writer, bad paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.records import JobRecord, Run, Score

KEY = store.JobKey(model="pythia-70m", step=1000, shots=0, doc_limit=None, dtype="float32")


def _job(run_id: str, value: float = 0.5, tasks=("piqa", "sciq")):
    run = Run(run_id=run_id, source="local", model="pythia-70m", step=1000, dtype="float32")
    scores = [Score(model="pythia-70m", step=1000, tokens=1000 * 2_097_152, task=t, metric="acc",
                    shots=0, value=value, stderr=0.01, n=100, doc_limit=None, dtype="float32",
                    run_id=run_id, source="local") for t in tasks]
    return JobRecord(run, 0, scores, [])


def _local(db):
    return store.read_df(db, "SELECT * FROM scores WHERE source = 'local' ORDER BY task")


def test_a_second_writer_of_the_same_job_adds_nothing(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    assert store.write_job(db, _job("a")) == ["piqa", "sciq"]
    assert store.write_job(db, _job("b", 0.9)) == []
    assert store.write_job(db, _job("c", 0.7, tasks=("piqa", "winogrande"))) == ["winogrande"]
    scores = _local(db)
    assert list(scores.task) == ["piqa", "sciq", "winogrande"] and list(scores.value) == [0.5, 0.5, 0.7]
    assert store.stored_tasks(db, KEY) == {"piqa", "sciq", "winogrande"}
    assert store.stored_tasks(db, store.JobKey("pythia-70m", 1000, 5, None, "float32")) == set()


def test_replace_swaps_rows(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, _job("a"))
    assert store.write_job(db, _job("b", 0.9), replace=True) == ["piqa", "sciq"]
    assert list(_local(db).value) == [0.9, 0.9] and set(_local(db).run_id) == {"b"}


def test_a_failed_job_leaves_nothing(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    record = _job("a")
    record.scores[1].task = None  # violates NOT NULL after the first rows went in
    with pytest.raises(Exception):
        store.write_job(db, record)
    assert _local(db).empty
    assert store.read_df(db, "SELECT count(*) AS n FROM runs").n[0] == 0


WRITER = textwrap.dedent("""
    import sys
    from evalsuite import store
    from evalsuite.records import JobRecord, Run, Score
    db = store.init(__import__("pathlib").Path(sys.argv[1]), seed=False)
    for step in range(1, 41):
        run = Run(run_id=f"r{step}", source="local", model="pythia-70m", step=step, dtype="float32")
        scores = [Score("pythia-70m", step, None, "piqa", "acc", 0, 0.5, 0.01, 10, None,
                        "float32", f"r{step}", "local")]
        store.write_job(db, JobRecord(run, 0, scores, []))
""")


def test_readers_read_while_a_sweep_writes(tmp_path):
    """Two processes: one writes 40 jobs, this one reads all the while; neither fails."""
    db = tmp_path / "s.duckdb"
    store.init(db, seed=False)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stderr=subprocess.PIPE, text=True)
    seen = []
    while writer.poll() is None:
        seen.append(len(_local(db)))
        time.sleep(0.01)
    assert writer.returncode == 0, writer.stderr.read()
    assert len(_local(db)) == 40
    assert len(seen) > 3 and seen == sorted(seen)  # it read many times, never a partial state


def test_unwritable_store_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(store.EvalsuiteError, match=f"cannot create store folder {blocker}"):
        store.init(blocker / "s.duckdb")
    assert main(["run", "--db", str(blocker / "s.duckdb"), "--tasks", "piqa", "--limit", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"evalsuite: error: cannot create store folder {blocker}")


def test_not_a_database(tmp_path, capsys):
    bogus = tmp_path / "s.duckdb"
    bogus.write_text("hello")
    assert main(["ls", "--db", str(bogus)]) == 2
    assert capsys.readouterr().err.startswith(f"evalsuite: error: cannot open store {bogus}:")
    assert bogus.read_text() == "hello"  # untouched
