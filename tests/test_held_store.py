"""A reader holding the store never costs a sweep what it evaluated: records wait (in memory, then
in `<db>.spool/`) and are committed when the store is free, or by the next sweep; once each."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time

import pytest

from evalsuite import store
from evalsuite.sweep import local
from evalsuite.sweep.committer import Committer
from evalsuite.sweep.spool import spool_root

import factory
from conftest import cli_env, evalsuite_cmd

# Another process's read connection: DuckDB then refuses this process's writes. It holds until
# its stdin closes (or `hold_s`), after `ready` (SQL returning one number) is above 0.
HOLDER = """
import sys, time, duckdb
db, ready, hold_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
while True:
    try:
        con = duckdb.connect(db, read_only=True)
    except duckdb.Error:
        time.sleep(0.02)
        continue
    if con.execute(ready).fetchone()[0] > 0:
        break
    con.close()
    time.sleep(0.1)
print("held", flush=True)
if hold_s > 0:
    time.sleep(hold_s)
else:
    sys.stdin.read()
con.close()
"""


def hold(db, ready: str = "SELECT 1", hold_s: float = 0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), ready, str(hold_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc


def held(proc: subprocess.Popen) -> subprocess.Popen:
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(30)


def _steps(db):
    return list(store.read_df(db, "SELECT step FROM scores ORDER BY step").step)


def test_a_held_store_keeps_records_waiting_then_commits_each_once(tmp_path, monkeypatch):
    monkeypatch.setattr("evalsuite.sweep.committer.RETRY_S", 0.2)
    db = store.init(tmp_path / "s.duckdb", seed=False)
    reader = held(hold(db))
    news = []
    try:
        with Committer(db, memory=1, on_wait=news.append) as committer:
            started = time.monotonic()
            for step in (1000, 2000, 3000):
                committer.submit(factory.job(step=step, samples=2))  # returns: the evaluation goes on
            assert time.monotonic() - started < 10
            assert len(list(spool_root(db).glob("*/*.pkl"))) == 2  # past `memory`: on disk
            deadline = time.monotonic() + 30
            while not news and time.monotonic() < deadline:
                time.sleep(0.05)
            assert news and news[0].startswith(f"PID {reader.pid}")  # who holds it, by DuckDB's word
            release(reader)
    finally:
        reader.kill()
    assert _steps(db) == [1000, 2000, 3000]
    assert [c.step for c in committer.committed] == [1000, 2000, 3000] and not committer.left
    assert news[-1] is None and not spool_root(db).exists()


def test_records_a_stopped_sweep_left_are_committed_by_the_next_once(tmp_path, monkeypatch):
    monkeypatch.setattr("evalsuite.sweep.committer.RETRY_S", 0.2)
    db = store.init(tmp_path / "s.duckdb", seed=False)
    records = [factory.job(step=step, samples=2) for step in (1000, 2000)]
    reader = held(hold(db))
    try:
        with Committer(db, memory=1, end_wait_s=0.5) as committer:
            # the sweep's documents: a write that must not be lost either
            committer.note(functools.partial(store.write_documents, db, factory.documents("piqa", 2)), keep=True)
            for record in records:
                committer.submit(record)
    finally:
        release(reader)
    assert _steps(db) == [] and len(committer.left) == 2
    assert "pythia-70m step 1000: not stored yet (the store is held by PID" in committer.left[0]
    assert len(list(spool_root(db).glob("*/*.pkl"))) == 3  # two records and the documents
    store.write_job(db, records[0])  # as if the stopped sweep had committed it before it was killed
    with Committer(db) as committer:
        committer.submit(factory.job(step=3000, samples=2))
    assert _steps(db) == [1000, 2000, 3000]  # step 1000 once: the kept record found it stored
    assert committer.recovered == 2 and [c.step for c in committer.committed] == [3000]
    assert store.read_df(db, "SELECT count(*) AS n FROM samples").n[0] == 6
    assert store.read_df(db, "SELECT count(*) AS n FROM documents").n[0] == 2
    assert not spool_root(db).exists()


@pytest.mark.slow
def test_a_sweep_outlasts_a_reader_holding_the_store(tmp_path, checkpoints, hf_home):
    """A real sweep while another process holds a read connection for longer than the lock wait
    (on main: the sweep gave up after that wait, exit 2, evaluated checkpoints lost)."""
    db = tmp_path / "store.duckdb"
    env = {**cli_env(hf_home, db), "EVALSUITE_LOCK_WAIT_S": "2", "PYTHONUNBUFFERED": "1"}
    sweep = subprocess.Popen(
        evalsuite_cmd("run", "--model", "mine", "--model-path", str(checkpoints), "--tasks", "arc_easy",
                      "--limit", "4", "--steps", "1000,2000,3000"),
        env=env, stdout=subprocess.PIPE, stderr=(tmp_path / "err").open("w"), text=True,
        stdin=subprocess.DEVNULL)  # stderr to a file: a pipe nobody reads yet could fill and stall it
    # held from the moment the sweep has stored its documents (it is evaluating) until released
    reader = hold(db, "SELECT count(*) FROM documents")
    # a sweep that never stores its documents or never says it waits fails here, not by CI's limit
    watchdog = threading.Timer(300, lambda: (sweep.kill(), reader.kill()))
    watchdog.start()
    try:
        held(reader)
        lines = []
        for line in sweep.stdout:  # the sweep says it waits, and for whom ...
            lines.append(line)
            if "the store is held by" in line:
                break
        assert f"the store is held by PID {reader.pid}" in "".join(lines), (tmp_path / "err").read_text()[-3000:]
        time.sleep(5)  # ... past the lock wait, after which the sweep used to give up
        release(reader)
        out, _ = sweep.communicate(timeout=600)
    finally:
        watchdog.cancel()
        reader.kill()
        sweep.kill()
    err = (tmp_path / "err").read_text()
    assert sweep.returncode == 0, err[-3000:]
    assert "store held by PID" in err  # the progress line said so while it waited
    assert "evaluated 3 checkpoint(s)" in out
    scores = store.read_df(db, "SELECT step, count(*) AS n FROM scores WHERE source = 'local' GROUP BY step "
                               "ORDER BY step")
    assert scores.step.tolist() == [1000, 2000, 3000] and (scores.n == scores.n[0]).all()
    assert store.read_df(db, "SELECT count(*) AS n FROM runs WHERE source = 'local'").n[0] == 3
    assert not spool_root(db).exists()


def test_a_store_held_only_after_the_last_checkpoint_is_said_before_the_sweep_waits(tmp_path):
    """The committer may learn of a reader only after the last checkpoint was handed over (its
    try at the lock takes a second); the sweep then says who holds the store before it waits for
    it. Before, it said nothing and waited up to an hour: a CI run hung so."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    reader = held(hold(db))
    said: list[str] = []
    try:
        with Committer(db, end_wait_s=0.5) as committer:
            committer.submit(factory.job(step=1000, samples=2))  # the last checkpoint: its commit meets the reader
            local.last_commits(committer, set(), said.append)
    finally:
        release(reader)
    assert len(said) == 1 and said[0].startswith(f"the store is held by PID {reader.pid}")
    assert "evaluated checkpoints wait" in said[0] and len(committer.left) == 1


@pytest.mark.slow
def test_a_sweep_ending_while_the_store_is_held_names_what_waits_and_the_next_run_stores_it(
        tmp_path, checkpoints, monkeypatch, capsys):
    from evalsuite.cli import main

    monkeypatch.setattr("evalsuite.sweep.committer.RETRY_S", 0.2)
    monkeypatch.setattr("evalsuite.sweep.committer.END_WAIT_S", 1.0)
    monkeypatch.setenv("EVALSUITE_LOCK_WAIT_S", "2")
    db = tmp_path / "store.duckdb"
    argv = ["run", "--model", "mine", "--model-path", str(checkpoints), "--tasks", "arc_easy", "--limit", "4",
            "--steps", "1000,2000", "--db", str(db)]
    reader = hold(db, "SELECT count(*) FROM documents")  # from the moment the sweep is evaluating, for good
    evaluate = local.evaluate_loaded

    def once_held(*args, **kwargs):  # the first checkpoint's record waits until the reader holds the store
        if not once_held.waited:
            held(reader)
            once_held.waited = True
        return evaluate(*args, **kwargs)

    once_held.waited = False
    monkeypatch.setattr(local, "evaluate_loaded", once_held)
    try:
        assert main(argv) == 2
    finally:
        release(reader)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err[-3:-1]] == ["evaluated, not stored"] * 2
    assert err[-3].startswith(f"evaluated, not stored: mine step 1000: not stored yet (the store is held by PID "
                              f"{reader.pid} (")
    assert err[-1] == ("evalsuite: error: 2 evaluated checkpoint(s) are not in the store yet (listed above); "
                       "run the same command again once the store is free")
    assert main(argv) == 0  # nothing evaluated again: the kept checkpoints are committed before planning
    out = capsys.readouterr().out
    assert "2 of 2 checkpoints already stored; 0 to evaluate" in out
    assert "committed 2 checkpoint(s) an earlier, stopped sweep had left waiting" in out
    scores = store.read_df(db, "SELECT step, count(*) AS n FROM scores WHERE source = 'local' GROUP BY step")
    assert sorted(scores.step) == [1000, 2000] and not spool_root(db).exists()


def test_a_crafted_spool_file_is_refused_not_run(tmp_path):
    """A spool folder beside a store that came from elsewhere: its file is never executed; the
    sweep's recovery stops with one line naming it, and the file stays for the user to look at."""
    import os
    import pickle

    from evalsuite.errors import EvalsuiteError
    from evalsuite.sweep.committer import commit_left_over

    db = store.init(tmp_path / "s.duckdb", seed=False)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = spool_root(db) / "1-abcdef12"
    folder.mkdir(parents=True)
    crafted = folder / "00000001.pkl"
    crafted.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(EvalsuiteError, match=f"cannot read {crafted}: not an evaluated checkpoint evalsuite "
                                             r"kept \(it names posix.system\)"):
        commit_left_over(db)
    assert not marker.exists() and crafted.exists()
