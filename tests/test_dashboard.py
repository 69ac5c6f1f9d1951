"""The dashboard's four views under Streamlit's AppTest, on a real store.

The store is a new one (seeded with EleutherAI's published scores from results/published.csv)
plus 'local' runs written through store.write_job, the sweep's own writer: a pythia-demo curve and
a pythia-70m final checkpoint whose scores sit a known number of stderrs from the published ones.
(Running the demo model itself takes about 45 s per checkpoint on a 2-core machine, too slow here.)
Chart checks read the data Streamlit actually sends to the browser, from the Vega-Lite element.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import download
from dashboard.data import add_model_columns
from dashboard.views.compare import differences
from evalsuite import store
from evalsuite.baselines import model_info
from evalsuite.records import JobRecord, Run, Score, Sweep, WorkerState
from evalsuite.registry import FINAL_STEP, tokens_seen

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
CARD_TASKS = ["lambada_openai", "piqa", "winogrande", "arc_easy", "sciq"]
DEMO_STEPS = [0, 25, 50, 100]
FAR = {"lambada_openai"}  # local pythia-70m scores placed 3 stderrs off the published ones


def _job(path: Path, model: str, step: int, rows: list[tuple[str, str, float, float]], n: int,
         sweep_id: str | None = None) -> str:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    run_id = f"test-{model}-{step}"
    run = Run(run_id=run_id, source="local", model=model, step=step, backend="evalsuite-fast",
              doc_limit=n, dtype="float32", device="cpu", started_at=now, finished_at=now, duration_s=1.0)
    scores = [Score(model, step, tokens_seen(step), task, metric, 0, value, se, n, n, "float32", run_id, "local")
              for task, metric, value, se in rows]
    store.write_job(path, JobRecord(run, 0, scores, []), sweep_id=sweep_id)
    return run_id


def _published(path: Path, model: str, step: int) -> pd.DataFrame:
    return store.read_df(path, "SELECT task, metric, value, stderr FROM scores WHERE source = 'published' "
                               "AND model = ? AND step = ? AND shots = 0", [model, step])


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = store.init(tmp_path_factory.mktemp("dash") / "store.duckdb")
    ref = _published(path, "pythia-70m", FINAL_STEP)
    off = [(t, m, v + (3.0 if t in FAR else 0.2) * se, se) for t, m, v, se in ref.itertuples(index=False)]
    _job(path, "pythia-70m", FINAL_STEP, off, 500)
    # a demo-shaped curve: the untrained 70m's published scores, drifting a little with each step
    start = _published(path, "pythia-70m", 0)
    now = store.utcnow()  # a sweep still running: 4 of its 8 checkpoints stored
    store.start_sweep(path, Sweep("sw1", "pythia-demo", planned=8, started_at=now, updated_at=now, hostname="lab-gpu-3"))
    for i, step in enumerate(DEMO_STEPS):
        rows = [(t, m, v * (1 + 0.01 * i), se) for t, m, v, se in start.itertuples(index=False)]
        _job(path, "pythia-demo", step, rows, 50, sweep_id="sw1")
    return path


def _app(db: Path, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("EVALSUITE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _charts(at: AppTest) -> list[tuple[dict, pd.DataFrame]]:
    """(spec, all rows of every dataset) of each chart on the page."""
    out = []
    for chart in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
        out.append((json.loads(chart.proto.spec), pd.concat(frames, ignore_index=True)))
    return out


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("view", ["training", "scaling", "compare", "runs"])
def test_every_view_renders_a_chart_and_downloads(db, monkeypatch, view):
    at = _app(db, monkeypatch, view=view)
    _clean(at)
    assert _charts(at), f"{view} drew no chart"
    assert [b.proto.label for b in at.download_button][-2:] == ["Download CSV", "Download JSON"]


def test_training_curves_carry_every_stored_checkpoint(db, monkeypatch):
    at = _app(db, monkeypatch)  # default view: lambada_openai acc, 0-shot, all models
    _clean(at)
    (spec, shown), = _charts(at)
    want = store.read_df(db, "SELECT model, step, source, value FROM scores WHERE task = 'lambada_openai' "
                             "AND metric = 'acc' AND shots = 0 AND step IS NOT NULL")
    got = shown.drop_duplicates(["model", "step", "source"])
    assert len(got) == len(want)
    merged = want.merge(got, on=["model", "source"], suffixes=("", "_shown"))
    merged = merged[merged["step"] == merged["step_shown"]]
    assert len(merged) == len(want) and (merged["value"] - merged["value_shown"]).abs().max() < 1e-12
    assert set(got.loc[got["model"] == "pythia-demo", "step"]) == set(DEMO_STEPS)
    assert spec["layer"][1]["encoding"]["x"]["scale"]["type"] == "symlog"  # step 0 kept on a log axis


def test_scaling_default_is_the_model_card_figures(db, monkeypatch):
    at = _app(db, monkeypatch, view="scaling")
    _clean(at)
    charts = _charts(at)
    assert sorted(spec["title"] for spec, _ in charts) == sorted(f"{t} acc" for t in CARD_TASKS)
    for _, rows in charts:
        published = rows[rows["source"] == "published"]
        assert set(published["family"]) == {"Pythia", "Pythia (deduped)", "OPT", "BLOOM"}
        assert set(published["step"].dropna()) == {FINAL_STEP}
        for model, params in published[["model", "params"]].drop_duplicates().itertuples(index=False):
            assert params == model_info(model).params
        assert "pythia-demo" not in set(rows["model"])  # it has no step 143000
    at = _app(db, monkeypatch, view="scaling", task="piqa", step="0")
    _clean(at)
    (_, rows), = _charts(at)
    assert set(rows["step"]) == {0} and "pythia-demo" not in set(rows["model"])
    assert any("pythia-demo" in c.value for c in at.caption)  # no parameter count: a note says so


def test_local_vs_published_flags_what_is_off_by_more_than_a_stderr(db, monkeypatch):
    table = differences(add_model_columns(store.read_df(db, "SELECT * FROM scores")), "local")
    assert set(table["model"]) == {"pythia-70m"} and set(table["step"]) == {FINAL_STEP}
    assert set(table.loc[table["flag"], "task"]) == FAR  # 3 se over; 0.2 se is within both stderrs
    at = _app(db, monkeypatch, view="compare")
    _clean(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(table)
    (_, shown), = _charts(at)
    assert set(shown.loc[shown["source"] == "local", "model"]) == {"pythia-70m"}


def test_runs_view_shows_coverage_provenance_and_the_sweep(db, monkeypatch):
    at = _app(db, monkeypatch, view="runs", source="local")
    _clean(at)
    (_, cells), = _charts(at)
    assert set(cells.loc[cells["model"] == "pythia-demo", "step_label"]) == {str(s) for s in DEMO_STEPS}
    provenance = at.dataframe[0].value
    assert set(provenance["run_id"]) == {"test-pythia-70m-143000"} | {f"test-pythia-demo-{s}" for s in DEMO_STEPS}
    assert any("Sweep progress" in m.value for m in at.markdown)
    bar, = [p for p in at.get("progress") if "lab-gpu-3" in p.proto.text]
    assert bar.proto.text.startswith("pythia-demo on lab-gpu-3: 4 of 8 checkpoints stored, ")
    assert "left" in bar.proto.text and bar.proto.value == 50


def test_runs_view_lists_the_workers_of_a_ray_sweep(tmp_path, monkeypatch):
    path = store.init(tmp_path / "ray.duckdb", seed=False)
    now = store.utcnow()
    store.start_sweep(path, Sweep("sw2", "pythia-70m", planned=6, started_at=now, updated_at=now, hostname="head-1"))
    _job(path, "pythia-70m", 1000, [("piqa", "acc", 0.5, 0.1)], 10, sweep_id="sw2")
    for worker, state, node, step in [(0, "evaluating", "gpu-a", 2000), (1, "lost", "gpu-b", None),
                                      (2, "idle", "gpu-a", None)]:
        store.set_worker(path, WorkerState("sw2", worker, state, node=node, node_id=f"id-{node}", gpu="0 (1/4)",
                                           pid=100 + worker, model=step and "pythia-70m", step=step, updated_at=now))
    store.set_worker(path, WorkerState("sw2", 0, "evaluating", node="gpu-a", gpu="0 (1/4)", model="pythia-70m",
                                       step=3000, done=1, updated_at=now))  # the driver moved it on
    at = _app(path, monkeypatch, view="runs")
    _clean(at)
    assert any(c.value == "Ray workers: 1 of 2 busy, 1 lost" for c in at.caption)
    workers = at.dataframe[0].value
    assert list(workers["worker"]) == [0, 1, 2] and list(workers["state"]) == ["evaluating", "lost", "idle"]
    assert (workers.loc[0, "node"], workers.loc[0, "step"], workers.loc[0, "done"]) == ("gpu-a", 3000, 1)


def test_url_reproduces_the_view_and_follows_the_pickers(db, monkeypatch):
    at = _app(db, monkeypatch, task="piqa", metric="acc_norm", x="tokens", variant="deduped")
    _clean(at)
    (spec, rows), = _charts(at)
    assert spec["title"] == "piqa acc_norm, 0-shot"
    assert set(rows["variant"]) == {"deduped"} and "tokens" in spec["layer"][1]["encoding"]["x"]["field"]
    at.selectbox(key="task").select("sciq").run()
    assert at.query_params["task"] == "sciq" and at.query_params["metric"] == "acc_norm"


def test_unknown_names_in_the_link_warn_and_fall_back(db, monkeypatch):
    at = _app(db, monkeypatch, view="nope", task="hellaswag", models="pythia-70m,gpt-17")
    _clean(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "nope" in warnings and "hellaswag" in warnings and "gpt-17" in warnings
    (_, rows), = _charts(at)
    assert set(rows["model"]) == {"pythia-70m"} and set(rows["task"]) == {"lambada_openai"}


def test_missing_empty_and_foreign_stores_get_a_message(tmp_path, monkeypatch):
    empty = store.init(tmp_path / "empty.duckdb", seed=False)
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("not a database")
    for path, words in [(tmp_path / "none.duckdb", "evalsuite import"), (empty, "evalsuite import"),
                        (foreign, "not a valid DuckDB")]:
        for view in ["training", "runs"]:
            at = _app(path, monkeypatch, view=view)
            _clean(at)
            assert words in at.info[0].value


def test_a_single_point_is_drawn_and_explained(tmp_path, monkeypatch):
    path = store.init(tmp_path / "one.duckdb", seed=False)
    _job(path, "pythia-demo", 0, [("piqa", "acc", 0.5, 0.1)], 10)
    for view in ["training", "scaling", "compare", "runs"]:
        at = _app(path, monkeypatch, view=view)
        _clean(at)
    at = _app(path, monkeypatch)
    (_, rows), = _charts(at)
    assert len(rows.drop_duplicates(["model", "step"])) == 1
    assert any("Only one checkpoint" in c.value for c in at.caption)


def test_rows_a_sweep_commits_appear_on_the_next_rerun(tmp_path, monkeypatch):
    path = store.init(tmp_path / "live.duckdb", seed=False)
    _job(path, "pythia-demo", 0, [("piqa", "acc", 0.5, 0.1)], 10)
    at = _app(path, monkeypatch)
    _job(path, "pythia-demo", 25, [("piqa", "acc", 0.6, 0.1)], 10)
    at.run()
    (_, rows), = _charts(at)
    assert set(rows["step"]) == {0, 25}


def test_downloads_hold_the_rows_of_the_view(db):
    rows = add_model_columns(store.read_df(db, "SELECT * FROM scores WHERE model = 'opt-125m'"))
    from io import BytesIO

    back = pd.read_csv(BytesIO(download.to_csv(rows)))
    assert len(back) == len(rows) and set(back["task"]) == set(rows["task"])
    records = json.loads(download.to_json(rows))
    assert len(records) == len(rows) and all(r["step"] is None for r in records)


def test_dashboard_command_refuses_a_busy_port_in_one_line(tmp_path, capsys):
    import socket

    from evalsuite.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--db", str(tmp_path / "s.duckdb"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"127.0.0.1:{port}" in err and "--port" in err
