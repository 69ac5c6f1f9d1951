"""Issue 18 in the dashboard (and issue 19's Items default), under Streamlit's AppTest on real
stores: the markers, bands and smoothed curves on Training curves, p_correct there, the paired
comparison in the Compare view, the Signal and noise table, the scaling fit and its backtest.
Each check compares what Streamlit sends to the browser with what the CLI or the statistics
functions compute on the same store, so it fails when the view shows anything else (or nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from evalsuite import store
from evalsuite.stats import curve, fit
from evalsuite.store.items import ItemsKey
from evalsuite.store.values import checkpoint_scores

import factory
from conftest import assert_clean, open_app

JUMP_STEPS = [0, 1000, 2000, 3000, 4000]
DOCS = 200


def _right(step: int) -> list[bool]:
    """A model that learns PIQA at step 2000: 40 documents right before, 180 after; the same
    documents throughout otherwise (so only the change 1000 -> 2000 is real)."""
    share = 40 if step < 2000 else 180
    return [d < share for d in range(DOCS)]


@pytest.fixture(scope="module")
def jump_db(tmp_path_factory) -> Path:
    path = store.init(tmp_path_factory.mktemp("jump") / "store.duckdb")
    for step in JUMP_STEPS:
        correct = _right(step)
        samples = factory.outcomes("pythia-410m", step, "piqa", correct, norm=correct)
        share = sum(correct) / DOCS
        store.write_job(path, factory.job("pythia-410m", step, [("piqa", "acc", share, 0.03),
                                                                ("piqa", "acc_norm", share, 0.03)],
                                          n=DOCS, samples=samples))
    store.write_documents(path, factory.documents("piqa", DOCS))
    return path


def _app(db: Path, monkeypatch, **params):
    at = open_app(db, monkeypatch, timeout=120, **params)
    assert_clean(at)
    return at


def _datasets(at: AppTest) -> list[pd.DataFrame]:
    """Every dataset of every chart on the page, as sent to the browser."""
    return [pa.ipc.open_stream(d.data.data).read_pandas() for chart in at.get("vega_lite_chart")
            for d in chart.proto.datasets]


def _with(at: AppTest, column: str) -> pd.DataFrame:
    frames = [f for f in _datasets(at) if column in f.columns]
    assert len(frames) == 1, f"{len(frames)} datasets with {column}"
    return frames[0]


def _no(at: AppTest, column: str) -> None:
    assert not [f for f in _datasets(at) if column in f.columns]


def test_training_curve_marks_the_significant_change_with_either_correction(jump_db, monkeypatch):
    at = _app(jump_db, monkeypatch, task="piqa")
    key = ItemsKey("pythia-410m", "piqa", 0, "acc", "local")
    markers = _with(at, "p_adjusted")
    want = curve.changes(jump_db, key, "holm")
    assert want["significant"].tolist() == [False, True, False, False]  # only 1000 -> 2000
    assert markers["step"].tolist() == [2000] and markers["direction"].tolist() == ["up"]
    assert markers["p_adjusted"].tolist() == pytest.approx(want.loc[want["significant"], "p_adjusted"].tolist())
    assert any("1 of 4 changes between consecutive evaluated checkpoints are significant after Holm's" in c.value
               for c in at.caption)
    at.radio(key="correction").set_value("bh").run()
    bh = curve.changes(jump_db, key, "bh")
    assert _with(at, "p_adjusted")["p_adjusted"].tolist() == pytest.approx(
        bh.loc[bh["significant"], "p_adjusted"].tolist())
    assert at.query_params["correction"] == "bh"
    at.selectbox(key="sig").set_value("none").run()
    _no(at, "p_adjusted")
    _no(at, "ci_low")


def test_training_band_is_the_document_bootstrap_where_samples_exist(jump_db, monkeypatch):
    at = _app(jump_db, monkeypatch, task="piqa")
    band = _with(at, "ci_low").sort_values("step")
    want = curve.intervals(jump_db, ItemsKey("pythia-410m", "piqa", 0, "acc", "local"))
    assert band["step"].tolist() == JUMP_STEPS and set(band["interval"]) == {"bootstrap"}
    assert np.allclose(band["ci_low"], want["ci_low"]) and np.allclose(band["ci_high"], want["ci_high"])
    published = _app(jump_db, monkeypatch, task="piqa", sig="pythia-70m|published")  # no samples: stderr
    band = _with(published, "ci_low")
    assert set(band["interval"]) == {"stderr"} and len(band) > 20
    assert np.allclose(band["ci_high"] - band["value"], 1.959963984540054 * (band["value"] - band["ci_low"])
                       / 1.959963984540054)


def test_training_smoothed_curve_and_p_correct(jump_db, monkeypatch):
    at = _app(jump_db, monkeypatch, task="piqa", smooth="1", window="2", metric="p_correct")
    assert "p_correct" in at.selectbox(key="metric").options and "bpb" in at.selectbox(key="metric").options
    derived = checkpoint_scores(jump_db, "p_correct", ["pythia-410m"], ["piqa"], "local", 0).sort_values("step")
    smoothed = _with(at, "smoothed")
    mine = smoothed[smoothed["model"] == "pythia-410m"].sort_values("step")
    assert np.allclose(mine["smoothed"], derived["value"].rolling(2, min_periods=1).mean())
    assert "smoothed over 2 checkpoints" in at.get("vega_lite_chart")[0].proto.spec
    lines = [f for f in _datasets(at) if "value" in f.columns and "series" in f.columns]
    local = pd.concat(lines).query("model == 'pythia-410m'").drop_duplicates("step").sort_values("step")
    assert np.allclose(local["value"], derived["value"])  # the curve is p_correct, not acc
    assert not np.allclose(local["value"], [sum(_right(s)) / DOCS for s in JUMP_STEPS])


def test_compare_view_pairs_two_checkpoints_as_evalsuite_compare_does(jump_db, monkeypatch, capsys):
    from evalsuite.cli import main

    at = _app(jump_db, monkeypatch, view="compare", a_model="pythia-410m", a_step="1000", b_model="pythia-410m",
              b_step="2000")
    table = at.dataframe[-1].value
    assert main(["compare", "pythia-410m@1000", "pythia-410m@2000", "--db", str(jump_db), "--format", "json"]) == 0
    cli = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert table["task"].tolist() == cli["task"].tolist() == ["piqa"]
    for column in ("n_docs", "only_a", "only_b", "diff", "ci_low", "ci_high", "p_value"):
        assert table[column].astype(float).tolist() == pytest.approx(cli[column].astype(float).tolist()), column
    assert table["only_b"].iloc[0] == 140 and table["test"].iloc[0] == "mcnemar-exact"
    # a published checkpoint (no samples) against one's own: the unpaired test, labelled so
    at = _app(jump_db, monkeypatch, view="compare", a_model="pythia-410m", a_step="3000", a_source="published",
              b_model="pythia-410m", b_step="3000", b_source="local")
    assert at.dataframe[-1].value["test"].tolist() == ["unpaired-z"]


def test_signal_and_noise_table_is_evalsuite_stats_on_the_published_numbers(tmp_path, monkeypatch, capsys):
    from evalsuite.cli import main

    seeded = store.init(tmp_path / "published.duckdb")
    at = _app(seeded, monkeypatch, view="signal")
    table = at.dataframe[0].value
    assert main(["stats", "--db", str(seeded), "--shots", "0", "--format", "json"]) == 0
    cli = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert len(table) == len(cli) > 20 and set(table["family"]) >= {"pythia", "pythia-deduped"}
    merged = table.merge(cli, on=["source", "family", "task", "metric", "shots"], suffixes=("", "_cli"))
    assert len(merged) == len(cli)
    for column in ("signal", "noise", "snr"):
        assert np.allclose(merged[column].astype(float), merged[f"{column}_cli"].astype(float), equal_nan=True)
    assert any("Most reliable signal" in m.value for m in at.markdown)


def test_scaling_fit_is_drawn_with_its_band_and_the_backtest_beside_it(tmp_path, monkeypatch):
    seeded = store.init(tmp_path / "published.duckdb")
    at = _app(seeded, monkeypatch, view="scaling", task="arc_easy")
    band = _with(at, "predicted")
    scores = checkpoint_scores(seeded, "acc", tasks=["arc_easy"], source="published", shots=0)
    pythia = scores[scores["model"].str.fullmatch(r"pythia-\d+(\.\d+)?[mb]")]
    final = pythia[pythia["step"] == 143000].set_index("model")["value"]
    final = final.iloc[np.argsort(fit.log_size(final.index))]  # by size, as the view fits them
    x = fit.log_size(final.index)
    assert band["params"].max() > 12e9  # drawn past the largest model
    want = fit.band(x, final.to_numpy(), "logistic", np.log10(band["params"]), fit.floor_of(pythia))
    assert np.allclose(band["predicted"], want["predicted"]) and np.allclose(band["low"], want["low"])
    backtest = at.dataframe[0].value.set_index(["model", "form"])
    small = [m for m in final.index if fit.log_size([m])[0] < np.log10(3e9)]
    large = [m for m in final.index if m not in small]
    expected = fit.backtest(pythia.assign(metric="acc"), small, large, 143000).set_index(["model", "form"])
    assert set(backtest.index) == set(expected.index) and len(expected) == 4
    assert np.allclose(backtest.loc[expected.index, "abs_error"], expected["abs_error"], atol=1e-9)
    poor = [m.value for m in at.markdown if m.value.startswith("**Poor fit**")]
    outside = backtest[(backtest.index.get_level_values("form") == "logistic") & ~backtest["in_band"]]
    assert len(poor) == len(outside) >= 1  # the logistic overshoots 6.9B and 12B on ARC-Easy


@pytest.fixture(scope="module")
def two_task_db(tmp_path_factory) -> Path:
    """LAMBADA (first in the task list) where every document is wrong at every checkpoint, and
    PIQA where documents change."""
    path = store.init(tmp_path_factory.mktemp("flat") / "store.duckdb")
    steps = [0, 25, 50, 100]
    for record in factory.learning("pythia-70m", steps, "piqa", docs=30):
        store.write_job(path, record)
    for step in steps:
        wrong = [False] * 30
        store.write_job(path, factory.job("pythia-70m", step, [("lambada_openai", "acc", 0.0, 0.0)], n=30,
                                          run_id=f"lambada-{step}",
                                          samples=factory.outcomes("pythia-70m", step, "lambada_openai", wrong)))
    return path


def test_items_opens_on_the_task_with_most_flips_and_says_when_nothing_changes(two_task_db, monkeypatch):
    at = _app(two_task_db, monkeypatch, view="items")
    assert at.selectbox(key="task").value == "piqa"  # not lambada_openai, first in the list
    assert at.query_params["task"] == "piqa"  # a link reopens it
    at = _app(two_task_db, monkeypatch)  # the training view first: its task is LAMBADA ...
    assert at.selectbox(key="task").value == "lambada_openai"
    at.sidebar.radio(key="view").set_value("items").run()  # ... and still Items opens on PIQA
    assert at.selectbox(key="task").value == "piqa"
    assert len(at.get("vega_lite_chart")) == 3  # the heat map and two spreads; no document picked yet
    flat = _app(two_task_db, monkeypatch, view="items", task="lambada_openai")
    texts = [i.value for i in flat.info]
    assert any(t.startswith("No document was learned: all 30 are wrong") for t in texts)
    assert any(t.startswith("No document flipped") for t in texts)
    titles = [c.proto.spec for c in flat.get("vega_lite_chart")]
    assert not any("When documents were learned" in t or "How often documents flipped" in t for t in titles)


def test_items_shows_p_correct_and_bpb_as_evalsuite_items_does(jump_db, monkeypatch, capsys):
    from evalsuite.cli import main

    for metric in ("p_correct", "bpb"):
        at = _app(jump_db, monkeypatch, view="items", value=metric)
        table = at.dataframe[0].value.set_index("doc_id").sort_index()
        assert main(["items", "--db", str(jump_db), "--model", "pythia-410m", "--task", "piqa", "--metric", metric,
                     "--format", "json"]) == 0
        cli = pd.DataFrame(json.loads(capsys.readouterr().out)).set_index("doc_id").sort_index()
        assert np.allclose(table[f"final_{metric}"].astype(float), cli[f"final_{metric}"].astype(float))
        assert any(f"final_{metric} `: its value at each document's last checkpoint" in c.value for c in at.caption)
