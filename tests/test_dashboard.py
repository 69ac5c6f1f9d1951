"""The dashboard's four views under Streamlit's AppTest, on a real store.

The store is a new one (seeded with EleutherAI's published scores from results/published.csv)
plus 'local' runs written through store.write_job, the sweep's own writer: a pythia-demo curve and
a pythia-70m final checkpoint whose scores sit a known number of stderrs from the published ones.
(Running the demo model itself takes about 45 s per checkpoint on a 2-core machine, too slow here.)
Chart checks read the data Streamlit actually sends to the browser, from the Vega-Lite element.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import download
from dashboard.data import add_model_columns
from dashboard.views.compare import differences
from dashboard.views.items import PICK_ONE
from evalsuite import store
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.catalog.pythia import FINAL_STEP
from evalsuite.records import Model, Sweep, WorkerState

import factory
from conftest import APP, assert_clean, open_app, wait_healthy

CARD_TASKS = ["lambada_openai", "piqa", "winogrande", "arc_easy", "sciq"]
DEMO_STEPS = [0, 25, 50, 100]
FAR = {"lambada_openai"}  # local pythia-70m scores placed 3 stderrs off the published ones


def _job(path: Path, model: str, step: int, rows: list[tuple[str, str, float, float]], n: int,
         sweep_id: str | None = None) -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    record = factory.job(model, step, rows, run_id=f"test-{model}-{step}", n=n, doc_limit=n,
                         backend="evalsuite-fast", device="cpu", started_at=now, finished_at=now, duration_s=1.0)
    store.write_job(path, record, sweep_id=sweep_id)
    return record.run.run_id


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
    store.start_sweep(path, Sweep("sw1", "pythia-demo", planned=8, started_at=now, updated_at=now,
                                  hostname="lab-gpu-3"))
    for i, step in enumerate(DEMO_STEPS):
        rows = [(t, m, v * (1 + 0.01 * i), se) for t, m, v, se in start.itertuples(index=False)]
        _job(path, "pythia-demo", step, rows, 50, sweep_id="sw1")
    return path


def _charts(at: AppTest) -> list[tuple[dict, pd.DataFrame]]:
    """(spec, all rows of every dataset) of each chart on the page."""
    out = []
    for chart in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
        out.append((json.loads(chart.proto.spec), pd.concat(frames, ignore_index=True)))
    return out


@pytest.mark.parametrize("view", ["training", "scaling", "compare", "runs"])
def test_every_view_renders_a_chart_and_downloads(db, monkeypatch, view):
    at = open_app(db, monkeypatch, view=view)
    assert_clean(at)
    assert _charts(at), f"{view} drew no chart"
    assert [b.proto.label for b in at.download_button][-2:] == ["Download CSV", "Download JSON"]


def test_training_curves_carry_every_stored_checkpoint(db, monkeypatch):
    # lambada_openai acc, 0-shot, all models (asked for: the demo-shaped curve's acc stays 0, so
    # the view would open on perplexity, see test_training_curves_open_on_the_metric_that_moves)
    at = open_app(db, monkeypatch, metric="acc")
    assert_clean(at)
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
    at = open_app(db, monkeypatch, view="scaling")
    assert_clean(at)
    charts = _charts(at)
    assert sorted(spec["title"] for spec, _ in charts) == sorted(f"{t} acc" for t in CARD_TASKS)
    for _, rows in charts:
        published = rows[rows["source"] == "published"]
        assert set(published["family"]) == {"Pythia", "Pythia (deduped)", "OPT", "BLOOM"}
        assert set(published["step"].dropna()) == {FINAL_STEP}
        for model, params in published[["model", "params"]].drop_duplicates().itertuples(index=False):
            assert params == builtin_catalog().get(model).params
        assert "pythia-demo" not in set(rows["model"])  # it has no step 143000
    at = open_app(db, monkeypatch, view="scaling", task="piqa", step="0")
    assert_clean(at)
    (_, rows), = _charts(at)
    rows = rows[rows["model"].notna()]  # not the scaling fit's band (tests/test_dashboard_stats.py)
    assert set(rows["step"]) == {0} and "pythia-demo" not in set(rows["model"])
    assert any("pythia-demo" in c.value for c in at.caption)  # no parameter count: a note says so


def test_local_vs_published_flags_what_is_off_by_more_than_a_stderr(db, monkeypatch):
    table = differences(add_model_columns(store.read_df(db, *store.scores_with_representative())), "local")
    assert set(table["model"]) == {"pythia-70m"} and set(table["step"]) == {FINAL_STEP}
    assert set(table.loc[table["flag"], "task"]) == FAR  # 3 se over; 0.2 se is within both stderrs
    at = open_app(db, monkeypatch, view="compare")
    assert_clean(at)
    # the differences, then the paired comparison of two checkpoints (tests/test_dashboard_stats.py)
    assert len(at.dataframe) == 2 and len(at.dataframe[0].value) == len(table)
    (_, shown), = _charts(at)
    assert set(shown.loc[shown["source"] == "local", "model"]) == {"pythia-70m"}


def test_long_tables_show_their_first_rows_and_say_the_download_holds_all(db, monkeypatch):
    from dashboard.views import compare, runs

    full = differences(add_model_columns(store.read_df(db, *store.scores_with_representative())), "local")
    monkeypatch.setattr(compare, "SHOWN_ROWS", 2)
    at = open_app(db, monkeypatch, view="compare")
    assert_clean(at)
    shown = at.dataframe[0].value  # the two that differ most, in combined stderrs
    assert shown["diff_in_stderr"].tolist() == full["diff_in_stderr"].head(2).tolist() and len(full) > 2
    assert f"The 2 that differ most, in combined stderrs, of {len(full):,}" in " ".join(c.value for c in at.caption)
    monkeypatch.setattr(runs, "SHOWN_RUNS", 3)
    at = open_app(db, monkeypatch, view="runs")
    every = store.read_df(db, "SELECT run_id FROM runs ORDER BY finished_at DESC NULLS LAST")["run_id"]
    assert at.dataframe[0].value["run_id"].tolist() == every.head(3).tolist()
    assert f"The latest 3 of {len(every):,} runs" in " ".join(c.value for c in at.caption)


def test_runs_view_shows_coverage_provenance_and_the_sweep(db, monkeypatch):
    at = open_app(db, monkeypatch, view="runs", source="local")
    assert_clean(at)
    (_, cells), = _charts(at)
    assert set(cells.loc[cells["model"] == "pythia-demo", "step_label"]) == {str(s) for s in DEMO_STEPS}
    provenance = at.dataframe[0].value
    assert set(provenance["run_id"]) == {"test-pythia-70m-143000"} | {f"test-pythia-demo-{s}" for s in DEMO_STEPS}
    assert any("Sweep progress" in m.value for m in at.markdown)
    bar, = [p for p in at.get("progress") if "lab-gpu-3" in p.proto.text]
    assert bar.proto.text.startswith("` pythia-demo ` on ` lab-gpu-3 `: 4 of 8 checkpoints stored, ")
    assert "left" in bar.proto.text and bar.proto.value == 50


def test_runs_view_lists_the_workers_of_a_ray_sweep(tmp_path, monkeypatch):
    path = store.init(tmp_path / "ray.duckdb", seed=False)
    now = store.utcnow()
    store.start_sweep(path, Sweep("sw2", "pythia-70m", planned=6, started_at=now, updated_at=now,
                                  hostname="head-1"))
    _job(path, "pythia-70m", 1000, [("piqa", "acc", 0.5, 0.1)], 10, sweep_id="sw2")
    for worker, state, node, step in [(0, "evaluating", "gpu-a", 2000), (1, "lost", "gpu-b", None),
                                      (2, "idle", "gpu-a", None)]:
        store.set_worker(path, WorkerState("sw2", worker, state, node=node, node_id=f"id-{node}", gpu="0 (1/4)",
                                           pid=100 + worker, model="pythia-70m" if step else None, step=step,
                                           updated_at=now))
    store.set_worker(path, WorkerState("sw2", 0, "evaluating", node="gpu-a", gpu="0 (1/4)", model="pythia-70m",
                                       step=3000, done=1, updated_at=now))  # the driver moved it on
    at = open_app(path, monkeypatch, view="runs")
    assert_clean(at)
    assert any(c.value == "Ray workers: 1 of 2 busy, 1 lost" for c in at.caption)
    workers = at.dataframe[0].value
    assert list(workers["worker"]) == [0, 1, 2] and list(workers["state"]) == ["evaluating", "lost", "idle"]
    assert (workers.loc[0, "node"], workers.loc[0, "step"], workers.loc[0, "done"]) == ("gpu-a", 3000, 1)


def test_runs_view_counts_each_models_own_checkpoints(tmp_path, monkeypatch):
    """Progress out of the checkpoints a model has: Pythia's schedule for a PolyPythia seed, the
    count a run found for a training run (the store's models table); unknown: no bar."""
    path = store.init(tmp_path / "own.duckdb", seed=False)
    now = store.utcnow()
    store.start_sweep(path, Sweep("sw3", "my-run,pythia-160m-seed3,mystery", planned=3, started_at=now,
                                  updated_at=now, hostname="lab"))
    record = factory.job("my-run", 500, run_id="r-my-run")
    record.model = Model("my-run", "mine", checkpoints=5)
    store.write_job(path, record, sweep_id="sw3")
    _job(path, "pythia-160m-seed3", 1000, [("piqa", "acc", 0.5, 0.1)], 10, sweep_id="sw3")
    _job(path, "mystery", 7, [("piqa", "acc", 0.5, 0.1)], 10, sweep_id="sw3")
    at = open_app(path, monkeypatch, view="runs")
    assert_clean(at)
    bars = [p.proto.text for p in at.get("progress")]
    assert "` my-run `: 1 of 5 checkpoints have local scores" in bars
    assert "` pythia-160m-seed3 `: 1 of 154 checkpoints have local scores" in bars
    assert any(c.value == "` mystery `: 1 checkpoints have local scores" for c in at.caption)


def test_compare_holds_any_model_two_sources_evaluated(tmp_path, monkeypatch):
    """A training run of one's own, evaluated here and by another lab: compared against that
    lab's numbers (published has none of it)."""
    path = store.init(tmp_path / "labs.duckdb", seed=False)
    for source, value in (("local", 0.52), ("lab", 0.50)):
        store.write_job(path, factory.job("my-run", 500, [("piqa", "acc", value, 0.005)], source=source,
                                          run_id=f"{source}-500", doc_limit=None))
    at = open_app(path, monkeypatch, view="compare", against="lab")
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["model"]) == ["my-run"] and bool(table["flag"].iloc[0])  # 0.02 apart, 0.007 combined stderr
    assert "value (lab)" in table.columns


def test_url_reproduces_the_view_and_follows_the_pickers(db, monkeypatch):
    at = open_app(db, monkeypatch, task="piqa", metric="acc_norm", x="tokens", variant="deduped")
    assert_clean(at)
    (spec, rows), = _charts(at)
    assert spec["title"] == "piqa acc_norm, 0-shot"
    assert set(rows["variant"]) == {"deduped"} and "tokens" in spec["layer"][1]["encoding"]["x"]["field"]
    at.selectbox(key="task").select("sciq").run()
    assert at.query_params["task"] == "sciq" and at.query_params["metric"] == "acc_norm"


def test_unknown_names_in_the_link_warn_and_fall_back(db, monkeypatch):
    at = open_app(db, monkeypatch, view="nope", task="hellaswag", models="pythia-70m,gpt-17")
    assert_clean(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "nope" in warnings and "hellaswag" in warnings and "gpt-17" in warnings
    (_, rows), = _charts(at)
    assert set(rows["model"]) == {"pythia-70m"} and set(rows["task"]) == {"lambada_openai"}


def test_missing_empty_and_foreign_stores_get_a_message(tmp_path, monkeypatch):
    empty = store.init(tmp_path / "empty.duckdb", seed=False)
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("not a database")
    for path, words in [(tmp_path / "none.duckdb", "evalsuite import"), (empty, "evalsuite import"),
                        (foreign, "not a DuckDB database")]:
        for view in ["training", "runs"]:
            at = open_app(path, monkeypatch, view=view)
            assert_clean(at)
            assert words in at.info[0].value


def test_a_single_point_is_drawn_and_explained(tmp_path, monkeypatch):
    path = store.init(tmp_path / "one.duckdb", seed=False)
    _job(path, "pythia-demo", 0, [("piqa", "acc", 0.5, 0.1)], 10)
    for view in ["training", "scaling", "compare", "runs"]:
        at = open_app(path, monkeypatch, view=view)
        assert_clean(at)
    at = open_app(path, monkeypatch)
    (_, rows), = _charts(at)
    assert len(rows.drop_duplicates(["model", "step"])) == 1
    assert any("Only one checkpoint" in c.value for c in at.caption)


def test_rows_a_sweep_commits_appear_on_the_next_rerun(tmp_path, monkeypatch):
    path = store.init(tmp_path / "live.duckdb", seed=False)
    _job(path, "pythia-demo", 0, [("piqa", "acc", 0.5, 0.1)], 10)
    at = open_app(path, monkeypatch)
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


def test_the_server_imports_the_app_before_it_answers_and_says_nothing_of_it():
    from dashboard import launch

    assert launch.command("127.0.0.1", 8501)[1:3] == ["-m", "dashboard.serve"]
    views = [f"dashboard.views.{name}" for name in ("compare", "items", "runs", "scaling", "signal", "training")]
    script = f"import sys; from dashboard import serve; serve.preload(); print(sorted(set({views}) - set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]"  # imported, and no page drawn (nothing printed)
    assert done.stderr == ""  # st.cache_data's "No runtime found" warnings, one per function, kept quiet


def test_evalsuite_dashboard_and_streamlit_run_from_the_root_use_the_same_server_settings():
    import tomllib

    from dashboard import launch

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    passed = dict(zip(launch.RUNNER[::2], launch.RUNNER[1::2]))
    written = {f"--{section}.{name}": str(value).lower() for section, values in config.items()
               for name, value in values.items()}
    assert passed == {key: written[key] for key in passed}
    assert passed["--server.fileWatcherType"] == "none"  # no walk over every module after each page


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


def test_a_port_left_by_a_dashboard_just_stopped_is_free():
    """A server that closed its connections leaves them in TIME_WAIT for up to a minute: the
    dashboard binds there (as Streamlit does), so it must not call the port busy."""
    import socket

    from dashboard import launch

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit's server (tornado) binds
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    client.close()
    launch._check_port("127.0.0.1", port)


# --- Issue 11: links and stored names are shown as text; nothing displaces the published value ---

LINK = "[sign in](https://evil.example/login)"
IMAGE = "![x](https://evil.example/x.png)"
AUTOLINK = "https://evil.example/a"


def _markdown_shown(at: AppTest) -> list[str]:
    """The markdown source of every element Streamlit renders as markdown, progress texts included."""
    bodies = [el.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
              for el in at.get(kind)]
    return bodies + [p.proto.text for p in at.get("progress")]


def _inert(bodies: list[str]) -> None:
    """Rendered as GitHub-flavoured markdown (links, autolinks, images), no body holds a link or
    an image: the crafted values show as code."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("gfm-like")  # CommonMark + tables, strikethrough and linkify (bare URLs)
    for body in bodies:
        html = md.render(body)
        assert "<a " not in html and "<img" not in html, body


def test_a_crafted_link_renders_as_inert_text(db, monkeypatch):
    """Item 9: values in a link that the store does not hold were echoed into st.warning as
    markdown: a fake 'sign in' link, a remote image."""
    at = open_app(db, monkeypatch, task=LINK, metric=AUTOLINK, models=f"pythia-70m,{IMAGE}")
    assert_clean(at)
    from markdown_it import MarkdownIt

    warnings = " ".join(MarkdownIt("gfm-like").render(w.value) for w in at.warning)
    for value in (LINK, IMAGE, AUTOLINK):
        assert f"<code>{value}</code>" in warnings  # shown, verbatim, as code
    _inert(_markdown_shown(at))


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    """A seeded store plus a run whose model and source names are markdown, as a store written
    before names were checked at import could hold."""
    path = store.init(tmp_path_factory.mktemp("hostile") / "store.duckdb")
    store.write_job(path, factory.job(LINK, FINAL_STEP, factory.tasks(*CARD_TASKS), run_id="old-import",
                                      source=IMAGE, n=100, dtype=None))
    return path


@pytest.mark.parametrize("view", ["training", "scaling", "compare", "runs"])
def test_stored_names_render_as_inert_text(hostile_db, monkeypatch, view):
    at = open_app(hostile_db, monkeypatch, view=view)
    assert_clean(at)
    shown = _markdown_shown(at)
    if view != "runs":  # the runs view names them in its table and chart only
        assert any(LINK in body or IMAGE in body for body in shown), shown
    _inert(shown)


FORGED = 0.99  # the real pythia-70m step 143000 PIQA acc is 0.5947


def _forge(tmp_path: Path) -> Path:
    from evalsuite.paths import PUBLISHED_RAW_DIR

    raw = json.loads((PUBLISHED_RAW_DIR / "pythia-v1/pythia-70m/zero-shot/70m_step143000.json").read_text())
    raw["results"]["piqa"]["acc"] = FORGED
    raw["n-samples"] = {"piqa": {"effective": 10**9}}  # "more documents than the published run"
    raw["config"]["model_args"] += ",dtype=float16"  # another key than the shipped rows: it is stored
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(raw))
    return path


def test_nothing_imported_displaces_the_shipped_published_value(tmp_path, monkeypatch):
    """Item 2: a forged file became the 'published' value in the curves and the Compare view."""
    from dashboard.data import pick
    from evalsuite.cli import main

    db = store.init(tmp_path / "s.duckdb")
    shipped = store.read_df(db, "SELECT value FROM scores WHERE model = 'pythia-70m' AND step = 143000 "
                                "AND task = 'piqa' AND metric = 'acc' AND shots = 0").value[0]
    assert main(["import", str(_forge(tmp_path)), "--db", str(db), "--source", "published"]) == 0
    scores = add_model_columns(store.read_df(db, *store.scores_with_representative()))
    rows = scores[(scores.model == "pythia-70m") & (scores.step == FINAL_STEP) & (scores.task == "piqa")
                  & (scores.metric == "acc") & (scores.shots == 0) & (scores.source == "published")]
    assert sorted(rows["value"]) == [shipped, FORGED]  # stored, as asked, but it stands for nothing:
    picked = pick(scores, "piqa", "acc", 0)
    assert picked[(picked.model == "pythia-70m") & (picked.step == FINAL_STEP)].value.tolist() == [shipped]
    _job(db, "pythia-70m", FINAL_STEP, [("piqa", "acc", 0.6, 0.01)], 500)
    table = differences(add_model_columns(store.read_df(db, *store.scores_with_representative())), "local")
    assert table.loc[table.task == "piqa", "value_published"].tolist() == [shipped]
    at = open_app(db, monkeypatch, task="piqa", models="pythia-70m")
    assert_clean(at)
    (_, drawn), = _charts(at)
    final = drawn[(drawn["step"] == FINAL_STEP) & (drawn["source"] == "published")]
    assert set(final["value"]) == {shipped}


def test_dashboard_serves_on_ipv6_loopback(tmp_path):
    """Item 10: `--host ::1` always failed (the port check used an IPv4 socket)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        port = probe.getsockname()[1]
    db = store.init(tmp_path / "s.duckdb", seed=False)
    proc = subprocess.Popen([sys.executable, "-m", "evalsuite", "dashboard", "--db", str(db), "--host", "::1",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().startswith(f"evalsuite dashboard: http://[::1]:{port}  (store ")
        wait_healthy(f"http://[::1]:{port}/_stcore/health", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_a_bare_streamlit_run_from_the_project_root_binds_localhost():
    """Item 10: `streamlit run dashboard/app.py`, as the app's docstring suggests, listened
    on every interface; .streamlit/config.toml in the project root now says 127.0.0.1."""
    import subprocess
    import sys

    root = Path(APP).parents[1]
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=root, capture_output=True,
                           text=True, check=True, timeout=120).stdout
    server = shown[shown.index("[server]"):]
    assert '\naddress = "127.0.0.1"\n' in server[: server.index("\n[", 1)]


def test_the_last_sweep_is_named_as_code():
    from dashboard.views.runs import _none_running

    now = pd.Timestamp("2025-01-01 12:00:00")
    sweeps = pd.DataFrame([{"models": LINK, "status": "done", "updated_at": now - pd.Timedelta(seconds=30),
                            "done": 3, "planned": 3}])
    assert _none_running(now, sweeps) == (
        "No sweep running. The last one (` [sign in](https://evil.example/login) `) finished 30 s ago: "
        "3 of 3 checkpoints.")
    assert _none_running(now, sweeps.assign(status="<b>odd</b>")).startswith(
        "No sweep running. The last one (` [sign in](https://evil.example/login) `) ` <b>odd</b> ` 30 s ago")
    _inert([_none_running(now, sweeps)])


# --- Issue 10: the Items view ---

ITEM_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 143000]


@pytest.fixture(scope="module")
def learning_db(tmp_path_factory) -> Path:
    """A seeded store, plus two sizes 'learning' PIQA over 19 checkpoints (60 documents, written
    by the sweep's writer) and the documents themselves."""
    path = store.init(tmp_path_factory.mktemp("items") / "store.duckdb")
    for model, seed in (("pythia-70m", 0), ("pythia-160m", 1)):
        for record in factory.learning(model, ITEM_STEPS, "piqa", docs=60, seed=seed):
            store.write_job(path, record)
    store.write_documents(path, factory.documents("piqa", 60))
    return path


def _items_json(db: Path, capsys, *flags: str) -> pd.DataFrame:
    from evalsuite.cli import main

    assert main(["items", "--db", str(db), "--task", "piqa", "--format", "json", *flags]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def _same_numbers(table: pd.DataFrame, cli: pd.DataFrame) -> bool:
    both = table.merge(cli, on="doc_id", suffixes=("", "_cli"))
    return len(both) == len(cli) and all(
        both[c].astype(float).equals(both[f"{c}_cli"].astype(float)) for c in ("learned_at", "flips", "final_margin"))


def test_items_view_shows_what_evalsuite_items_computes(learning_db, monkeypatch, capsys):
    at = open_app(learning_db, monkeypatch, view="items")
    assert_clean(at)
    table = at.dataframe[0].value  # every document, in learning order
    cli = _items_json(learning_db, capsys, "--model", "pythia-70m")
    assert len(table) == len(cli) == 60 and _same_numbers(table, cli)
    assert table.set_index("doc_id")["final_correct"].equals(cli.set_index("doc_id")["final_correct"].reindex(
        table["doc_id"]))
    learned = table["learned_at"].dropna().tolist()
    assert learned == sorted(learned) and table["learned_at"].isna().tolist() == sorted(table["learned_at"].isna())
    heat, learned_bars, flips = _charts(at)  # the page's order; no document is shown until one is picked
    assert at.selectbox(key="doc").value is None and PICK_ONE in [c.value for c in at.caption] and not at.text
    runs = heat[1]  # runs of equal outcome (charts.heat_runs), each document's covering every checkpoint
    assert runs["doc_id"].nunique() == 60 and (runs.groupby("doc_id")["checkpoints"].sum() == len(ITEM_STEPS)).all()
    assert set(runs["from_step"]) | set(runs["to_step"]) <= set(ITEM_STEPS) and len(runs) < 60 * len(ITEM_STEPS)
    per_doc = table.set_index("doc_id")["flips"]
    assert (runs.groupby("doc_id").size() - 1).sort_index().tolist() == per_doc.sort_index().tolist()
    never = int(table["learned_at"].isna().sum())
    assert learned_bars[1]["documents"].sum() == 60 - never and f"({never:,} not learned" in learned_bars[0]["title"]
    assert flips[1]["documents"].sum() == 60
    assert [b.proto.label for b in at.download_button][-2:] == ["Download CSV", "Download JSON"]


def test_picking_an_item_shows_it_and_the_link_holds_it(learning_db, monkeypatch):
    from evalsuite.store import items

    at = open_app(learning_db, monkeypatch, view="items")
    doc = int(at.dataframe[0].value["doc_id"].iloc[5])
    at.selectbox(key="doc").select(doc).run()
    assert_clean(at)
    assert at.query_params["doc"] == str(doc)
    assert at.text[0].value == f"Question {doc} of piqa?\nAnswer:"  # the prompt, as text
    choices = at.table[0].value
    assert choices.index.tolist() == ["0 (right)", "1"] and choices["text"].tolist() == [f" yes {doc}", f" no {doc}"]
    history = items.item_history(learning_db, items.ItemsKey("pythia-70m", "piqa"), doc)
    heat, learned_bars, flips, scale, curves, margins = _charts(at)  # the document's three after the view's
    assert set(scale[1]["model"]) == {"pythia-70m", "pythia-160m"} and PICK_ONE not in [c.value for c in at.caption]
    curves = curves[1]
    right = curves[curves["choice"] == "0 (right)"].sort_values("step")
    assert right["loglikelihood"].tolist() == [lls[0] for lls in history["loglikelihoods"]]
    again = open_app(learning_db, monkeypatch, view="items", doc=str(doc))  # the link reopens it
    assert again.selectbox(key="doc").value == doc and again.text[0].value == at.text[0].value


def test_the_document_table_lists_the_heat_maps_documents_and_the_selector_every_one(learning_db, monkeypatch):
    from dashboard.views import items

    monkeypatch.setattr(items, "HEAT_ROWS", 10)
    at = open_app(learning_db, monkeypatch, view="items")
    assert_clean(at)
    listed = at.dataframe[0].value["doc_id"].astype(int).tolist()
    runs = _charts(at)[0][1]  # the heat map's rows
    assert len(listed) == 10 and set(listed) == set(runs["doc_id"].astype(int))
    assert "**Documents** in the heat map, 10 of 60" in " ".join(m.value for m in at.markdown)
    every = at.selectbox(key="doc").options[1:]  # after "none yet"
    assert len(every) == 60 and at.selectbox(key="doc").value is None
    elsewhere = next(int(d) for d in every if int(d) not in listed)
    again = open_app(learning_db, monkeypatch, view="items", doc=str(elsewhere))  # any document, by link
    assert_clean(again)
    assert again.selectbox(key="doc").value == elsewhere and f"**Document ` {elsewhere} `**" in again.markdown[-2].value


def test_items_link_picks_model_and_metric(learning_db, monkeypatch, capsys):
    at = open_app(learning_db, monkeypatch, view="items", model="pythia-160m", norm="1")
    assert_clean(at)
    assert "` pythia-160m ` (steps 0 to 143000), source ` local `, right by ` acc_norm `" in at.caption[1].value
    table = at.dataframe[0].value
    assert _same_numbers(table, _items_json(learning_db, capsys, "--model", "pythia-160m", "--metric", "acc_norm"))
    assert not _same_numbers(table, _items_json(learning_db, capsys, "--model", "pythia-160m"))  # acc: others


def test_the_heat_map_spreads_its_rows_over_every_document_or_shows_a_page():
    from dashboard.views.items import HEAT_ROWS, SPREAD, _heat_docs

    table = pd.DataFrame({"doc_id": range(1000, 6153)})  # LAMBADA's 5,153 documents, in learning order
    spread = _heat_docs(table, SPREAD)
    assert len(spread) == HEAT_ROWS == len(set(spread)) and spread[0] == 1000 and spread[-1] > 6100
    assert spread == sorted(spread)  # in learning order, evenly apart
    assert _heat_docs(table, "2") == list(range(1400, 1600)) and _heat_docs(table, "25") == list(range(6000, 6153))


def test_items_view_says_where_there_are_no_samples(db, tmp_path, monkeypatch):
    seeded = store.init(tmp_path / "published.duckdb")
    at = open_app(seeded, monkeypatch, view="items")
    assert_clean(at)
    assert "holds no per-document samples" in at.info[0].value and "--log_samples" in at.info[0].value
    at = open_app(db, monkeypatch, view="items")  # local scores, but written without samples
    assert_clean(at)
    assert "No per-document samples of ` pythia-70m ` on ` lambada_openai `" in at.info[0].value


def test_items_link_values_and_stored_names_render_inert(hostile_db, learning_db, monkeypatch):
    at = open_app(learning_db, monkeypatch, view="items", model=LINK, task=IMAGE, doc=AUTOLINK)
    assert_clean(at)
    assert LINK in " ".join(w.value for w in at.warning)
    _inert(_markdown_shown(at))
    at = open_app(hostile_db, monkeypatch, view="items")
    assert_clean(at)
    assert LINK in at.info[0].value and IMAGE in at.info[0].value
    _inert(_markdown_shown(at))


def test_a_choice_with_its_own_context_is_shown_by_what_differs():
    """WinoGrande puts each option into the sentence and scores the same ending after each."""
    from dashboard.views.items import _prompt_and_choices

    contexts = ["Sarah was a better surgeon than Maria so Sarah", "Sarah was a better surgeon than Maria so Maria"]
    ending = " always got the harder cases."
    assert _prompt_and_choices(contexts[0], [ending, ending], contexts) == (
        "Sarah was a better surgeon than Maria so ", ["...Sarah" + ending, "...Maria" + ending])
    assert _prompt_and_choices("Q?\nAnswer:", [" a", " b"], None) == ("Q?\nAnswer:", [" a", " b"])


def test_training_curves_open_on_the_metric_that_moves(tmp_path, monkeypatch):
    """A small model wrong on every LAMBADA word at each checkpoint (acc 0 throughout), whose
    perplexity falls: the view opens on perplexity; once its acc moves, on acc."""
    path = store.init(tmp_path / "store.duckdb")
    for i, step in enumerate(DEMO_STEPS):
        _job(path, "pythia-demo", step, [("lambada_openai", "acc", 0.0, 0.0),
                                         ("lambada_openai", "perplexity", 1e6 / (i + 1), 1e4)], 100)
    at = open_app(path, monkeypatch, view="training")
    assert_clean(at)
    assert at.selectbox(key="metric").value == "perplexity"
    _job(path, "pythia-demo", 200, [("lambada_openai", "acc", 0.01, 0.01),
                                    ("lambada_openai", "perplexity", 1e5, 1e3)], 100)
    at = open_app(path, monkeypatch, view="training")
    assert at.selectbox(key="metric").value == "acc"
