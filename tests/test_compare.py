"""`evalsuite compare`, `evalsuite stats`, the training-curve statistics and the continuous
metrics on a real store (written by the store's own writer, seeded with EleutherAI's published
numbers), against hand-computed cases and independent computations (scipy; the published CSV
read with the csv module).

The example: pythia-160m, PIQA, six documents, right (R) or wrong (w) at two checkpoints:

    doc    0  1  2  3  4  5
    1000   R  R  w  w  R  w     3 right
    2000   R  w  R  R  R  R     5 right: only 1000 gets document 1, only 2000 gets 2, 3 and 5

so B (2000) minus A (1000) is 2/6, and McNemar's p is 2 x P(X <= 1 | n = 4, 1/2) = 2 x 5/16.
Each document's two choices are " café d" (right: 8 UTF-8 bytes, 7 characters) and " no d"; the
right one's loglikelihood is -2 + margin, the other's -2. And one LAMBADA document (one
continuation, " word", 5 bytes) at both steps.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalsuite import store
from evalsuite.cli import main
from evalsuite.paths import RESULTS_DIR
from evalsuite.records import Document, Sample
from evalsuite.stats import curve, paired
from evalsuite.store import items, values
from evalsuite.store.items import ItemsKey
from evalsuite.store.values import Checkpoint

import factory

R, W = True, False
CORRECT = {1000: [R, R, W, W, R, W], 2000: [R, W, R, R, R, R]}
MARGINS = {1000: [0.5, 1.0, -0.5, -2.0, 0.2, -0.1], 2000: [1.5, -0.3, 0.4, 0.1, 2.0, 0.6]}
LAMBADA_LL = {1000: -3.0, 2000: -1.5}


def _documents() -> list[Document]:
    piqa = [Document("piqa", 0, d, f"fp{d}", f"Goal {d}\nAnswer:", [f" café {d}", f" no {d}"], None, 0)
            for d in range(6)]
    return piqa + [Document("lambada_openai", 0, 0, "fpl", "The last", [" word"], None, None)]


def _record(step: int, source: str = "local"):
    samples = factory.outcomes("pythia-160m", step, "piqa", CORRECT[step], margins=MARGINS[step])
    samples.append(Sample("", "pythia-160m", step, "lambada_openai", 0, 0, None, step == 2000,
                          None, [LAMBADA_LL[step]], [step == 2000]))
    share = sum(CORRECT[step]) / 6
    return factory.job("pythia-160m", step, [("piqa", "acc", share, math.sqrt(share * (1 - share) / 5)),
                                             ("lambada_openai", "acc", float(step == 2000), 0.0)],
                       source=source, n=6, samples=samples)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = store.init(tmp_path_factory.mktemp("compare") / "s.duckdb")  # seeded: published numbers too
    store.write_documents(path, _documents())
    for step in CORRECT:
        store.write_job(path, _record(step))
    store.write_job(path, _record(2000, source="elsewhere"))  # another source with samples of one checkpoint
    return path


def _p_correct(step: int) -> np.ndarray:
    margins = np.array(MARGINS[step])
    return 1 / (1 + np.exp(-margins))  # softmax of (-2 + m, -2) at the first


def test_derived_metrics_per_document_are_the_hand_computed_ones(db):
    doc = values.checkpoint_documents(db, Checkpoint("pythia-160m", 2000, "local"), "p_correct", 0)
    np.testing.assert_allclose(doc.loc[doc.task == "piqa", "value"], _p_correct(2000), rtol=1e-12)
    assert doc.loc[doc.task == "lambada_openai", "value"].item() == pytest.approx(math.exp(-1.5))
    bpb = values.checkpoint_documents(db, Checkpoint("pythia-160m", 1000, "local"), "bpb", 0)
    right = -2 + np.array(MARGINS[1000])
    np.testing.assert_allclose(bpb.loc[bpb.task == "piqa", "value"], -right / math.log(2) / 8, rtol=1e-6)
    assert bpb.loc[bpb.task == "lambada_openai", "value"].item() == pytest.approx(3.0 / math.log(2) / 5)


def test_compare_counts_and_mcnemar_by_hand(db, capsys):
    argv = ["compare", "pythia-160m@1000", "pythia-160m@2000", "--db", str(db), "--task", "piqa", "--source", "local"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("A = pythia-160m@1000 (local), B = pythia-160m@2000 (local): acc, 0-shot; diff is B "
                        "minus A, with its 95% interval")
    assert lines[1].split() == ["task", *paired.COLUMNS[1:]]
    cells = lines[2].split()
    assert cells[:7] == ["piqa", "6", "3", "5", "1", "3", "+0.3333"]
    assert cells[9:] == [f"{2 * 5 / 16:.3g}", "mcnemar-exact"]
    assert main(argv + ["--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert list(row) == paired.COLUMNS
    assert row["p_value"] == pytest.approx(stats.binomtest(1, 4, 0.5).pvalue)
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]
    assert main(argv + ["--format", "json"]) == 0 and json.loads(capsys.readouterr().out) == [row]  # seeded


def test_a_model_alone_is_its_last_checkpoint_and_continuous_metrics_use_paired_t(db):
    a = Checkpoint("pythia-160m", 1000, "local")
    frame = paired.compare(db, a, Checkpoint("pythia-160m", 2000, "local"), "p_correct", tasks=["piqa"])
    (row,) = frame.to_dict("records")
    assert row["test"] == "paired-t" and pd.isna(row["only_a"])
    assert row["diff"] == pytest.approx((_p_correct(2000) - _p_correct(1000)).mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel(_p_correct(2000), _p_correct(1000)).pvalue, rel=1e-9)
    assert paired.last_checkpoint(db, "pythia-160m", "local", 0) == 2000


def test_published_numbers_are_compared_unpaired_from_their_stderrs(db, capsys):
    published = {}
    with (RESULTS_DIR / "published.csv").open() as file:
        for r in csv.DictReader(file):
            if (r["model"], r["task"], r["metric"], r["shots"]) == ("pythia-160m", "piqa", "acc", "0"):
                published[int(r["step"])] = (float(r["value"]), float(r["stderr"]))
    assert main(["compare", "pythia-160m@1000", "pythia-160m@3000", "--db", str(db), "--source", "published",
                 "--task", "piqa", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    (a, se_a), (b, se_b) = published[1000], published[3000]
    assert row["test"] == "unpaired-z" and row["n_docs"] is None and row["only_a"] is None
    assert row["diff"] == pytest.approx(b - a)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(b - a) / math.hypot(se_a, se_b)))
    # one side with samples, the other published only: unpaired as well
    assert main(["compare", "pythia-160m@1000", "pythia-160m@1000", "--db", str(db), "--source-a", "published",
                 "--source-b", "local", "--task", "piqa", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["test"] == "unpaired-z" and row["diff"] == pytest.approx(0.5 - a)


@pytest.mark.parametrize("argv,error", [
    (["pythia-160m@1000", "pythia-160m@2000"],
     "pythia-160m@2000 (0-shot) is stored from several sources (elsewhere, local): pick one with --source"),
    (["pythia-160m@7", "pythia-160m"], "pythia-160m@7 (0-shot) is not stored"),
    (["../x@1", "pythia-160m"], "bad model name '../x'"),
    (["pythia-160m@x", "pythia-160m"], "bad checkpoint 'pythia-160m@x'"),
    (["pythia-160m", "pythia-160m", "--source", "local", "--source-a", "local"], "--source names both sides"),
    (["pythia-160m@1000", "pythia-160m@2000", "--source", "local", "--metric", "bpb", "--task", "winogrande"],
     "nothing to compare"),
])
def test_compare_errors_are_one_line(db, capsys, argv, error):
    assert main(["compare", "--db", str(db), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evalsuite: error: {error}") and err.count("\n") == 1


def test_curve_changes_are_the_compare_of_consecutive_checkpoints(db):
    key = ItemsKey("pythia-160m", "piqa", 0, "acc", "local")
    (change,) = curve.changes(db, key).to_dict("records")
    assert (change["step_before"], change["step"], change["only_a"], change["only_b"]) == (1000, 2000, 1, 3)
    assert change["p_value"] == pytest.approx(2 * 5 / 16) and change["p_adjusted"] == change["p_value"]
    assert not change["significant"]
    bands = curve.intervals(db, key)
    assert bands["interval"].tolist() == ["bootstrap"] * 2 and bands["n"].tolist() == [6, 6]
    assert bands["value"].tolist() == pytest.approx([0.5, 5 / 6])


def test_published_curves_use_stderrs_and_the_correction(db):
    key = ItemsKey("pythia-160m", "piqa", 0, "acc", "published")
    bands = curve.intervals(db, key)
    assert len(bands) == 27 and set(bands["interval"]) == {"stderr"}
    first = bands.iloc[0]
    assert first.ci_high - first.value == pytest.approx(stats.norm.ppf(0.975) * 0.011651830225709977)
    changes = curve.changes(db, key, correction="bh")
    assert len(changes) == 26 and set(changes["test"]) == {"unpaired-z"}
    np.testing.assert_allclose(changes["p_adjusted"], stats.false_discovery_control(changes["p_value"]))
    assert changes["significant"].tolist() == (changes["p_adjusted"] <= 0.05).tolist()


def test_items_and_export_carry_the_derived_metrics(db, capsys, tmp_path):
    assert main(["items", "--db", str(db), "--model", "pythia-160m", "--task", "piqa", "--metric", "p_correct",
                 "--source", "local", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["final_p_correct"] for r in rows] == pytest.approx(list(_p_correct(2000)))
    assert [r["final_correct"] for r in rows] == CORRECT[2000]
    assert main(["export", "--db", str(db), "--model", "pythia-160m", "--source", "local", "--derived"]) == 0
    exported = json.loads(capsys.readouterr().out)
    derived = {(r["step"], r["task"], r["metric"]): r for r in exported if r["metric"] in ("p_correct", "bpb")}
    assert len(derived) == 8 and derived[(2000, "piqa", "p_correct")]["n"] == 6
    assert derived[(2000, "piqa", "p_correct")]["value"] == pytest.approx(_p_correct(2000).mean())
    assert derived[(2000, "piqa", "p_correct")]["stderr"] == pytest.approx(_p_correct(2000).std(ddof=1) / math.sqrt(6))
    out = tmp_path / "samples.parquet"
    assert main(["export", "--db", str(db), "--format", "samples", "--out", str(out), "--derived", "--task",
                 "lambada_openai", "--source", "local"]) == 0
    frame = pd.read_parquet(out).sort_values("step")
    assert frame["p_correct"].tolist() == pytest.approx([math.exp(-3.0), math.exp(-1.5)])
    assert frame["bpb"].tolist() == pytest.approx([3.0 / math.log(2) / 5, 1.5 / math.log(2) / 5])


def _published_noise_and_signal(family_models: list[str], task: str, metric: str, last: int) -> tuple[float, float]:
    """Heineman et al.'s definitions straight from the shipped CSV (their code's np.std and
    (max - min) / mean), independent of evalsuite's queries."""
    series: dict[str, dict[int, float]] = {m: {} for m in family_models}
    with (RESULTS_DIR / "published.csv").open() as file:
        for r in csv.DictReader(file):
            if r["model"] in series and (r["task"], r["metric"], r["shots"]) == (task, metric, "0"):
                series[r["model"]][int(r["step"])] = float(r["value"])
    noises = [np.std(v) / np.mean(v) for v in ([s[k] for k in sorted(s)[-last:]] for s in series.values())]
    finals = np.array([s[143000] for s in series.values()])
    return float(np.mean(noises)), float((finals.max() - finals.min()) / finals.mean())


def test_stats_on_the_published_numbers(db, capsys):
    assert main(["stats", "--db", str(db), "--family", "pythia-deduped", "--source", "published", "--task",
                 "arc_easy", "--metric", "acc_norm", "--shots", "0", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    sizes = ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]
    noise, signal = _published_noise_and_signal([f"pythia-{s}-deduped" for s in sizes], "arc_easy", "acc_norm", 5)
    assert (row["models"], row["step"], row["last_n"]) == (8, 143000, 5)
    assert row["noise"] == pytest.approx(noise) and row["signal"] == pytest.approx(signal)
    assert row["snr"] == pytest.approx(signal / noise)
    assert main(["stats", "--db", str(db), "--source", "published", "--family", "pythia", "--shots", "0"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["source", "family", "task", "metric", "shots", "models", "step", "signal", "last_n",
                                "noise", "snr"]
    assert len(table) == 1 + 9 + 1  # nine (task, metric) pairs, the definitions line


def test_stats_of_a_stores_own_runs_include_the_derived_metrics(db, capsys):
    assert main(["stats", "--db", str(db), "--source", "local", "--task", "piqa", "--format", "json"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"acc", "p_correct", "bpb"}
    p = [_p_correct(1000).mean(), _p_correct(2000).mean()]
    assert rows["p_correct"]["noise"] == pytest.approx(np.std(p) / np.mean(p))
    assert rows["p_correct"]["signal"] is None and rows["p_correct"]["models"] == 1  # one model: no signal


def test_a_store_without_samples_has_no_derived_values(tmp_path):
    path = store.init(tmp_path / "bare.duckdb", seed=False)
    assert values.derived_scores(path, "bpb").empty
    assert items.item_stats(path, ItemsKey("pythia-160m", "piqa", 0, "p_correct")).empty


def test_stats_and_compare_work_out_of_the_box_on_the_published_numbers(tmp_path, monkeypatch, capsys):
    """No store yet: the default store is made, seeded with the published numbers; a store named
    with --db that does not exist stays an error (a mistyped path makes no new file)."""
    default = tmp_path / "results" / "evalsuite.duckdb"
    monkeypatch.setattr("evalsuite.store.db.DEFAULT_DB", default)
    monkeypatch.delenv("EVALSUITE_DB", raising=False)
    assert main(["stats", "--family", "pythia", "--task", "piqa", "--metric", "acc", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["source"] for r in rows} == {"published"} and default.exists()
    assert main(["compare", "pythia-160m", "pythia-410m", "--task", "piqa", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["test"] == "unpaired-z"
    missing = tmp_path / "typo.duckdb"
    assert main(["stats", "--db", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == (f"evalsuite: error: no store at {missing}: run 'evalsuite run' or "
                                               "'evalsuite import' first")
    assert not missing.exists()
