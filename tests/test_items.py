"""Per-document training dynamics (store/items.py) against a hand-computed example, through the
store's own writer; the documents a sweep writes once; `evalsuite items` and `evalsuite export
--format samples` on the same store.

The example: pythia-70m, PIQA, five checkpoints (steps 0, 1000, 2000, 3000, 4000), five documents;
right (R) or wrong (w) at each:

    doc  0     1000  2000  3000  4000   learned_at  flips  final
    0    w     R     w     R     R      3000        3      R    learned, forgotten, learned again
    1    R     R     R     R     R      0           0      R    never wrong
    2    R     R     R     R     w      -           1      w    forgotten at the end
    3    w     w     w     w     w      -           0      w    never learned
    4    w     -     R     -     R      2000        1      R    evaluated at three steps only

Document 4 is in a --limit 1 trial at every step and in the full runs of steps 0, 2000 and 4000
only. The trial at 1000 says document 0 is wrong, the full run right: the full run stands.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.store import items

import factory

STEPS = [0, 1000, 2000, 3000, 4000]
R, W = True, False
OUTCOMES = {0: [W, R, W, R, R], 1: [R, R, R, R, R], 2: [R, R, R, R, W], 3: [W, W, W, W, W], 4: [W, None, R, None, R]}
EXPECTED = pd.DataFrame({"doc_id": [0, 1, 2, 3, 4], "steps": [5, 5, 5, 5, 3],
                         "learned_at": [3000, 0, None, None, 2000], "flips": [3, 0, 1, 0, 1],
                         "final_correct": [R, R, W, W, R]})
# The right choice's loglikelihood minus the other's at each step, for document 0; others +-1.
MARGINS_0 = [-0.5, 0.25, -2.0, 1.5, 3.0]
KEY = items.ItemsKey("pythia-70m", "piqa")


def _samples(step_index: int, docs: list[int], flip_doc_0: bool = False):
    step = STEPS[step_index]
    correct = [OUTCOMES[d][step_index] for d in docs]
    margins = [MARGINS_0[step_index] if d == 0 else (1.0 if ok else -1.0) for d, ok in zip(docs, correct)]
    if flip_doc_0:
        correct[0], margins[0] = not correct[0], -margins[0]
    samples = factory.outcomes("pythia-70m", step, "piqa", correct, margins=margins, norm=[not ok for ok in correct])
    for sample, d in zip(samples, docs):
        sample.doc_id = d
    return samples


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = store.init(tmp_path_factory.mktemp("items") / "s.duckdb", seed=False)
    for i, step in enumerate(STEPS):
        full = [d for d in OUTCOMES if OUTCOMES[d][i] is not None]
        store.write_job(path, factory.job(step=step, rows=[("piqa", "acc", 0.5, 0.1)], run_id=f"full-{step}",
                                          samples=_samples(i, full)))
        # a --limit trial of the same checkpoint (another key: stored beside it), disagreeing on document 0
        store.write_job(path, factory.job(step=step, rows=[("piqa", "acc", 0.5, 0.1)], run_id=f"trial-{step}",
                                          doc_limit=1, samples=_samples(i, [0], flip_doc_0=True)))
    # another source's samples of the same model: never mixed in
    store.write_job(path, factory.job(step=4000, rows=[("piqa", "acc", 0.0, 0.1)], source="elsewhere",
                                      samples=factory.outcomes("pythia-70m", 4000, "piqa", [W] * 5)))
    # another size, for difficulty by scale: its last checkpoint (2000) gets documents 0 and 3 right
    for step, correct in ((1000, [W, W, W, W, W]), (2000, [R, W, W, R, W])):
        store.write_job(path, factory.job("pythia-160m", step, [("piqa", "acc", 0.4, 0.1)],
                                          samples=factory.outcomes("pythia-160m", step, "piqa", correct)))
    return path


def test_statistics_are_the_hand_computed_ones(db):
    stats = items.item_stats(db, KEY)
    got = stats[EXPECTED.columns].astype(object).where(stats[EXPECTED.columns].notna(), None)
    assert got.to_dict("records") == EXPECTED.astype(object).where(EXPECTED.notna(), None).to_dict("records")
    assert stats["final_margin"].tolist() == [3.0, 1.0, -1.0, -1.0, 1.0]  # at each document's last step


def test_acc_norm_reads_its_own_column(db):
    stats = items.item_stats(db, items.ItemsKey("pythia-70m", "piqa", metric="acc_norm"))
    assert stats["final_correct"].tolist() == [not ok for ok in EXPECTED["final_correct"]]
    assert stats["flips"].tolist() == EXPECTED["flips"].tolist()  # the same changes, inverted
    with pytest.raises(store.EvalsuiteError, match="bad metric 'perplexity'"):
        items.item_stats(db, items.ItemsKey("pythia-70m", "piqa", metric="perplexity"))


def test_flips_by_task_counts_the_hand_computed_changes(db):
    """What the Items view opens on: per task, the documents and their changes between right and
    wrong over the checkpoints (the full runs', never the trials' or another source's)."""
    flips = items.flips_by_task(db, "pythia-70m", 0, "local")
    assert flips.to_dict("records") == [{"task": "piqa", "docs": 5, "flips": int(EXPECTED["flips"].sum())}]
    assert items.flips_by_task(db, "pythia-70m", 0, "elsewhere").flips.tolist() == [0]
    assert items.flips_by_task(db, "pythia-70m", 5, "local").empty


def test_one_document_over_training(db):
    history = items.item_history(db, KEY, 0)
    assert history["step"].tolist() == STEPS
    assert history["correct"].tolist() == OUTCOMES[0]  # the full runs', not the trial's
    assert history["margin"].tolist() == pytest.approx(MARGINS_0)
    assert [list(lls) for lls in history["loglikelihoods"]] == [[-2.0 + m, -2.0] for m in MARGINS_0]
    assert items.item_history(db, KEY, 4)["step"].tolist() == [0, 2000, 4000]


def test_heat_map_cells_are_the_documents_asked_for(db):
    cells = items.item_cells(db, KEY, [3, 4])
    assert list(zip(cells["doc_id"], cells["step"], cells["correct"])) == [
        (3, s, W) for s in STEPS] + [(4, 0, W), (4, 2000, R), (4, 4000, R)]


def test_difficulty_by_scale_is_each_models_last_checkpoint(db):
    per_model = items.by_scale(db, KEY, 0)
    assert list(zip(per_model["model"], per_model["step"], per_model["correct"])) == [
        ("pythia-160m", 2000, R), ("pythia-70m", 4000, R)]
    right = items.right_by_scale(db, KEY)
    assert right.to_dict("list") == {"doc_id": [0, 1, 2, 3, 4], "models": [2] * 5, "right": [2, 1, 0, 1, 1]}


def test_sources_are_never_mixed(db):
    assert items.sample_sources(db, "pythia-70m", "piqa", 0) == ["elsewhere", "local"]
    other = items.item_stats(db, items.ItemsKey("pythia-70m", "piqa", source="elsewhere"))
    assert other["steps"].tolist() == [1] * 5 and not other["final_correct"].any()
    assert items.item_stats(db, items.ItemsKey("pythia-70m", "piqa", shots=5)).empty


def test_items_command_prints_the_same_numbers(db, capsys, tmp_path):
    argv = ["items", "--db", str(db), "--model", "pythia-70m", "--task", "piqa"]
    assert main(argv) == 2  # two sources hold samples: which one?
    assert capsys.readouterr().err == ("evalsuite: error: samples of pythia-70m on piqa (0-shot) come from "
                                       "several sources (elsewhere, local): pick one with --source\n")
    assert main(argv + ["--source", "local", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [{k: r[k] for k in EXPECTED.columns} for r in rows] == EXPECTED.astype(object).where(
        EXPECTED.notna(), None).to_dict("records")
    assert main(argv + ["--source", "local"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["doc_id", "steps", "learned_at", "flips", "final_correct", "final_margin"]
    assert lines[1].split() == ["0", "5", "3000", "3", "True", "3.0000"]
    assert lines[3].split() == ["2", "5", "-", "1", "False", "-1.0000"]
    assert lines[-1] == ("5 documents of piqa (0-shot, acc), pythia-70m from source local: 3 learned for good "
                         "(60%), 2 wrong at their last step; 3 changed at least once")
    out = tmp_path / "items.json"
    assert main(argv + ["--source", "local", "--format", "json", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 5 documents to {out}\n" and json.loads(out.read_text()) == rows


@pytest.mark.parametrize("argv,error", [
    (["--model", "pythia-12b", "--task", "piqa"], "no per-document samples of pythia-12b on piqa (0-shot)"),
    (["--model", "pythia-70m", "--task", "piqa", "--source", "local", "--metric", "acc_norm", "--shots", "3"],
     "no per-document acc_norm of pythia-70m on piqa (3-shot) from source local"),
    (["--model", "../x", "--task", "piqa"], "bad model name '../x'"),
])
def test_items_command_errors_are_one_line(db, capsys, argv, error):
    assert main(["items", "--db", str(db), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: {error}") and err.count("\n") == 1


def test_a_store_made_before_documents_were_kept_still_answers(tmp_path, db):
    import shutil

    import duckdb

    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    with duckdb.connect(str(old)) as con:
        con.execute("DROP TABLE documents")
    assert items.item_stats(old, KEY)["flips"].tolist() == EXPECTED["flips"].tolist()
    assert items.documents(old, "piqa", 0, [0]).empty and items.prompt_ends(old, "piqa", 0).empty
    mine, ends = items.documents_of(old, KEY, [0]), items.prompt_ends_of(old, KEY)  # the dashboard's
    assert mine.empty and "prompt" in mine.columns and ends.empty and "prompt_end" in ends.columns
    store.init(old)  # the next writer adds the table
    assert store.write_documents(old, factory.documents("piqa", 2)) == 2


def test_documents_are_stored_once(tmp_path):
    db = store.init(tmp_path / "s.duckdb", seed=False)
    docs = factory.documents("piqa", 3)
    assert store.write_documents(db, docs + docs[:1]) == 3  # a repeat within one batch is one row
    assert store.write_documents(db, docs + factory.documents("piqa", 3, shots=5)) == 3  # only the 5-shot ones
    stored = items.documents(db, "piqa", 0, [0, 1, 2])
    assert stored["prompt"].tolist() == [d.prompt for d in docs]
    assert items.prompt_ends(db, "piqa", 0, chars=8)["prompt_end"].tolist() == ["?\nAnswer:"[-8:]] * 3


def _plain(column: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in column.tolist()]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_samples_writes_every_stored_sample(db, tmp_path, capsys, suffix):
    out = tmp_path / f"samples{suffix}"
    assert main(["export", "--db", str(db), "--format", "samples", "--out", str(out), "--model", "pythia-70m"]) == 0
    want = store.read_df(db, "SELECT s.*, r.source FROM samples s JOIN runs r USING (run_id) "
                             "WHERE s.model = 'pythia-70m'")
    assert capsys.readouterr().out == f"wrote {len(want)} samples to {out}\n"
    got = (pd.read_json(out, lines=True, dtype=False) if suffix == ".jsonl" else pd.read_parquet(out))
    assert list(got.columns) == ["source", "run_id", "model", "step", "task", "shots", "doc_id", "target",
                                 "correct", "correct_norm", "loglikelihoods"]
    order = ["model", "task", "shots", "source", "step", "run_id", "doc_id"]  # the same file every time
    assert got[order].equals(got.sort_values(order)[order]) and got["doc_id"].nunique() > 1
    key = ["run_id", "doc_id"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    for column in ["source", "run_id", "step", "doc_id", "correct", "correct_norm"]:
        assert _plain(got[column]) == _plain(want[column]), column
    assert [list(x) for x in got["loglikelihoods"]] == [list(x) for x in want["loglikelihoods"]]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file, no spill folder left


def test_export_samples_filters_by_source_and_task(db, tmp_path, capsys):
    out = tmp_path / "elsewhere.jsonl"
    assert main(["export", "--db", str(db), "--format", "samples", "--out", str(out),
                 "--source", "elsewhere", "--task", "piqa"]) == 0
    assert capsys.readouterr().out == f"wrote 5 samples to {out}\n"  # the source's one run of five documents
    got = pd.read_json(out, lines=True, dtype=False)
    assert set(got["source"]) == {"elsewhere"} and set(got["step"]) == {4000} and not got["correct"].any()


def test_export_samples_refuses_bad_outputs_in_one_line(db, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link.jsonl").symlink_to(elsewhere / "x.jsonl")
    cases = {"x.csv": "--format samples writes .jsonl or .parquet (by the extension)",
             "out/link.jsonl": "refusing to write",
             "none/x.jsonl": "is not a writable folder"}
    for name, error in cases.items():
        assert main(["export", "--db", str(db), "--format", "samples", "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert error in err and err.count("\n") == 1, err
    assert main(["export", "--db", str(db), "--format", "samples", "--out", str(tmp_path / "x.jsonl"),
                 "--task", "sciq"]) == 2
    assert capsys.readouterr().err == ("evalsuite: error: no stored samples match (published scores have none); "
                                       "see 'evalsuite ls'\n")
    assert not list(elsewhere.iterdir()) and not (tmp_path / "x.jsonl").exists()


def test_the_scores_and_the_items_view_pick_the_same_run_of_a_checkpoint(tmp_path):
    """Two full runs of one checkpoint (float32, then float16): the later one stands for it in
    the scores (curves, Compare) as in the Items view; run ids are random, so they decide nothing."""
    from datetime import UTC, datetime

    path = store.init(tmp_path / "s.duckdb", seed=False)
    for run_id, dtype, day, right in (("b-earlier", "float32", 1, False), ("a-later", "float16", 2, True)):
        finished = datetime(2026, 11, day, tzinfo=UTC)
        store.write_job(path, factory.job(step=1000, rows=[("piqa", "acc", float(right), 0.1)], run_id=run_id,
                                          dtype=dtype, finished_at=finished,
                                          samples=factory.outcomes("pythia-70m", 1000, "piqa", [right] * 3)))
    scores = store.read_df(path, *store.scores_with_representative())
    assert scores.loc[scores.representative, "run_id"].tolist() == ["a-later"]
    assert items.item_stats(path, KEY)["final_correct"].tolist() == [True] * 3


def test_a_released_model_s_documents_are_its_one_checkpoint_s_outcomes(tmp_path, capsys):
    """A model with one checkpoint and no step (opt-125m): each document's outcome there is its
    final_correct (arg_max over a NULL step gave none), with no learning time and no flips."""
    db = store.init(tmp_path / "s.duckdb", seed=False)
    store.write_job(db, factory.job("opt-125m", None, samples=factory.outcomes("opt-125m", None, "piqa", [R, W, R])))
    assert main(["items", "--db", str(db), "--model", "opt-125m", "--task", "piqa", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["final_correct"], r["learned_at"], r["flips"], r["final_margin"]) for r in rows] == [
        (True, None, 0, 1.0), (False, None, 0, -1.0), (True, None, 0, 1.0)]
    assert main(["items", "--db", str(db), "--model", "opt-125m", "--task", "piqa"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "3 documents of piqa (0-shot, acc), opt-125m from source local: 0 learned for good (0%), 1 wrong at "
        "their last step; 0 changed at least once")
