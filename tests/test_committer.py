"""The sweep's single writer: commits run beside the next evaluation, in order, and nothing
finished is lost when the sweep stops."""

from __future__ import annotations

import threading

import duckdb
import pytest

from evalsuite import store
from evalsuite.records import JobRecord
from evalsuite.sweep.committer import Committer

import factory


def _record(step: int) -> JobRecord:
    return factory.job(step=step, samples=2)


def _steps(db):
    return list(store.read_df(db, "SELECT step FROM scores ORDER BY step").step)


@pytest.fixture
def gated(monkeypatch):
    """store.write_job as it is, but each call first waits for the test to open its gate."""
    gate, entered, real = threading.Event(), threading.Event(), store.write_job

    def write_job(*args, **kwargs):
        entered.set()
        assert gate.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "write_job", write_job)
    return gate, entered


def test_submit_returns_while_the_commit_runs(tmp_path, gated):
    gate, entered = gated
    db = store.init(tmp_path / "s.duckdb", seed=False)
    with Committer(db) as committer:
        committer.submit(_record(1000))
        assert entered.wait(30)  # the commit has started on its own thread ...
        assert _steps(db) == []  # ... and has not finished: the caller is free to evaluate on
        gate.set()
        committer.submit(_record(2000))  # waits for the first, then queues the second
    assert _steps(db) == [1000, 2000]
    assert [c.step for c in committer.committed] == [1000, 2000]
    assert committer.committed[0].tasks == ["piqa"] and committer.committed[0].times.commit_s > 0


def test_a_failed_commit_surfaces_at_the_next_submit(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    bad = _record(1000)
    bad.samples[0].doc_id = None  # NOT NULL: the whole transaction rolls back
    committer = Committer(db)
    committer.submit(bad)
    with pytest.raises(duckdb.ConstraintException, match="doc_id"):
        committer.submit(_record(2000))
    committer.close()
    assert _steps(db) == []
    assert store.read_df(db, "SELECT count(*) AS n FROM samples").n[0] == 0


def test_stopping_still_stores_the_checkpoint_in_flight(tmp_path, gated):
    gate, entered = gated
    db = store.init(tmp_path / "s.duckdb", seed=False)
    with pytest.raises(KeyboardInterrupt):
        with Committer(db) as committer:
            committer.submit(_record(1000))
            assert entered.wait(30)
            gate.set()
            raise KeyboardInterrupt  # Ctrl-C while the next checkpoint was being evaluated
    assert _steps(db) == [1000]
    assert store.read_df(db, "SELECT count(*) AS n FROM samples").n[0] == 2


def test_notes_are_written_on_the_commit_thread_in_order(tmp_path, gated):
    """A Ray sweep's worker states go through the same thread as the commits, after the commit
    queued before them: the driver writes the store from one thread."""
    from evalsuite.records import WorkerState

    gate, entered = gated
    db = store.init(tmp_path / "s.duckdb", seed=False)
    threads = []

    def note(state: WorkerState):
        threads.append(threading.current_thread().name)
        store.set_worker(db, state)

    with Committer(db) as committer:
        committer.submit(_record(1000))
        assert entered.wait(30)
        committer.note(lambda: note(WorkerState("sw", 0, "evaluating", model="pythia-70m", step=2000)))
        committer.note(lambda: note(WorkerState("sw", 0, "idle", done=1)))  # the same worker, later
        assert store.read_df(db, "SELECT count(*) AS n FROM workers").n[0] == 0  # behind the commit
        gate.set()
    workers = store.read_df(db, "SELECT worker, state, step IS NULL AS no_step, done FROM workers")
    assert workers.values.tolist() == [[0, "idle", True, 1]]
    assert threads and all(name.startswith("evalsuite-commit") for name in threads)


def test_a_sweep_whose_writes_were_all_dropped_does_not_claim_it_stored_them(tmp_path):
    """Another writer stored the checkpoint meanwhile: the summary says so, with no empty table."""
    from evalsuite.io.report import run_summary
    from evalsuite.sweep.local import Startup, SweepReport

    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, _record(1000))  # the other writer
    with Committer(db) as committer:
        committer.submit(_record(1000))
    assert committer.committed[0].tasks == []
    summary = run_summary(db, SweepReport(committer.committed, Startup()), shots=0)
    assert summary == (f"evaluated 1 checkpoint(s) another writer stored meanwhile; their scores in {db} "
                       "were kept, these not written: pythia-70m step 1000")
