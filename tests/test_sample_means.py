"""p_correct and bpb per run are stored (the sample_means table) when samples or documents are
written, so a curve of every checkpoint is a read; whatever the order of writes, the stored means
are what working them out from the samples gives, and a store without the table reads the same."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from evalsuite import store
from evalsuite.store.values import derived_scores

from factory import documents, job, learning, outcomes

STEPS = [0, 1000, 2000, 4000]


def _worked_out(db: Path, name: str) -> pd.DataFrame:
    """derived_scores as a store without the table reads them: worked out from the samples."""
    copy = db.with_name("copy.duckdb")
    copy.write_bytes(db.read_bytes())
    with store.connect(copy) as con:
        con.execute("DROP TABLE sample_means")
    try:
        return derived_scores(copy, name, every_run=True)
    finally:
        copy.unlink()


def _same(db: Path) -> None:
    """Each derived metric as stored equals it worked out from the samples (the order of a
    parallel sum aside)."""
    for name in ("p_correct", "bpb"):
        stored, fresh = derived_scores(db, name, every_run=True), _worked_out(db, name)
        pd.testing.assert_frame_equal(stored, fresh, check_exact=False, rtol=1e-12)


def _stored(db: Path) -> pd.DataFrame:
    return store.read_df(db, "SELECT run_id, task, metric, value, n FROM sample_means ORDER BY ALL")


def _swept(db: Path) -> None:
    """A sweep's store: its 60 PIQA documents, then a model learning them over STEPS."""
    store.init(db, seed=False)
    store.write_documents(db, documents("piqa", 60))
    for record in learning("pythia-70m", STEPS):
        store.write_job(db, record)


def test_a_sweep_s_jobs_store_their_means(tmp_path):
    db = tmp_path / "store.duckdb"
    _swept(db)
    stored = _stored(db)
    assert len(stored) == 2 * len(STEPS) and set(stored.n) == {60}
    _same(db)
    # by hand, the first document at step 0: two choices, the first right
    lls = store.read_df(db, "SELECT loglikelihoods FROM samples WHERE step = 0 AND doc_id = 0").loglikelihoods[0]
    first = math.exp(lls[0]) / (math.exp(lls[0]) + math.exp(lls[1]))
    by_doc = store.read_df(db, "SELECT loglikelihoods FROM samples WHERE step = 0 ORDER BY doc_id").loglikelihoods
    mean = sum(math.exp(a) / (math.exp(a) + math.exp(b)) for a, b in by_doc) / 60
    assert first > 0 and stored.query("metric == 'p_correct'").value.iloc[0] == pytest.approx(mean, rel=1e-12)


def test_documents_stored_after_their_samples_give_bpb_then(tmp_path):
    """bpb needs the right choice's text: samples stored without documents (a store older than
    them, or a results file imported before its samples file's documents) get it when they come."""
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    for step in (1000, 2000):
        store.write_job(db, job("pythia-70m", step, samples=outcomes("pythia-70m", step, "piqa", [True, False, True])))
    assert derived_scores(db, "bpb").empty and len(derived_scores(db, "p_correct")) == 2
    store.write_documents(db, documents("piqa", 3))
    bpb = derived_scores(db, "bpb")
    assert list(bpb.n) == [3, 3]
    # right choice " yes 0" (6 bytes) at -1.0 nats
    assert bpb.value.iloc[0] == pytest.approx((1.0 / 6 + 3.0 / 6 + 1.0 / 6) / 3 / math.log(2))
    _same(db)
    store.write_documents(db, documents("piqa", 3))  # nothing new: nothing worked out again
    _same(db)


def test_a_job_that_brings_new_documents_works_the_means_out_once(tmp_path, monkeypatch):
    """An import's first file of a task brings its documents: its own run's means and those of
    every run with samples of that task (one stored before, without documents) come out of one
    pass, not its run twice (once as a run with samples, once for the documents it gained)."""
    from evalsuite.store import means

    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    store.write_job(db, job("pythia-70m", 1000, samples=outcomes("pythia-70m", 1000, "piqa", [True, False, True])))
    passes = []
    refresh = means.refresh
    monkeypatch.setattr(means, "refresh", lambda con, where, params: (passes.append(where),
                                                                      refresh(con, where, params)))
    record = job("pythia-70m", 2000, samples=outcomes("pythia-70m", 2000, "piqa", [True, True, False]))
    record.documents = documents("piqa", 3)
    store.write_job(db, record)
    assert len(passes) == 1
    assert list(derived_scores(db, "bpb").n) == [3, 3]  # both runs: the earlier one gained its texts too
    _same(db)
    store.write_jobs(db, [job("pythia-70m", 4000, samples=outcomes("pythia-70m", 4000, "piqa", [True] * 3))])
    assert len(passes) == 2 and list(derived_scores(db, "bpb").n) == [3, 3, 3]
    _same(db)


def test_a_replaced_job_replaces_its_means(tmp_path):
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    store.write_documents(db, documents("piqa", 4))
    store.write_job(db, job("pythia-70m", 1000, samples=outcomes("pythia-70m", 1000, "piqa", [True] * 4)))
    before = derived_scores(db, "p_correct").value.iloc[0]
    redone = job("pythia-70m", 1000, run_id="again", samples=outcomes("pythia-70m", 1000, "piqa", [False] * 4))
    store.write_job(db, redone, replace=True)
    after = derived_scores(db, "p_correct", every_run=True)
    assert list(after.run_id) == ["again"] and after.value.iloc[0] < 0.5 < before
    assert set(_stored(db).run_id) == {"again"}
    _same(db)


def test_an_import_batch_stores_its_means(tmp_path):
    db = tmp_path / "store.duckdb"
    store.init(db, seed=False)
    records = learning("pythia-70m", STEPS, docs=20)
    for record in records:
        record.documents = documents("piqa", 20)
    store.write_jobs(db, records)
    assert len(_stored(db)) == 2 * len(STEPS)
    _same(db)


def test_an_older_store_gets_its_means_at_the_next_init_and_reads_the_same_before(tmp_path):
    db = tmp_path / "store.duckdb"
    _swept(db)
    # every filter a reader passes, on the stored means and on means worked out
    picks = {"models": ["pythia-70m"], "tasks": ["piqa"], "source": "local", "shots": 0, "steps": [0, 2000]}
    stored = {name: derived_scores(db, name, **picks) for name in ("p_correct", "bpb")}
    assert [list(frame.step) for frame in stored.values()] == [[0, 2000], [0, 2000]]
    with store.connect(db) as con:  # as the store was before the table
        con.execute("DROP TABLE sample_means")
    for name, frame in stored.items():  # read as it is, worked out
        pd.testing.assert_frame_equal(derived_scores(db, name, **picks), frame, check_exact=False, rtol=1e-12)
    store.init(db, seed=False)
    assert len(_stored(db)) == 2 * len(STEPS)
    for name, frame in stored.items():
        pd.testing.assert_frame_equal(derived_scores(db, name, **picks), frame, check_exact=False, rtol=1e-12)
