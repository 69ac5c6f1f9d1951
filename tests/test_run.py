"""`evalsuite run` end to end: a tiny GPT-NeoX through the real repo-id + revision path (a fake
HF cache), real task data; stored scores equal lm-eval's own; resuming; a killed sweep; errors."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time

import pytest

from evalsuite import store

from conftest import cli_env, evalsuite_cmd, run_evalsuite

pytestmark = pytest.mark.slow

TASKS = "arc_easy,lambada_openai"  # one multiple-choice and one loglikelihood task
LIMIT = 6
ARGS = ["run", "--model", "pythia-70m", "--tasks", TASKS, "--limit", str(LIMIT)]  # fast backend


def _scores(db):
    return store.read_df(db, "SELECT * FROM scores WHERE source = 'local' ORDER BY step, task, metric")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, hf_home):
    db = tmp_path_factory.mktemp("run") / "store.duckdb"
    result = run_evalsuite(hf_home, db, *ARGS, "--steps", "1000,2000")
    assert result.returncode == 0, result.stderr[-3000:]
    return db, result


def test_run_stores_every_score_with_provenance(first_run):
    db, result = first_run
    scores = _scores(db)
    assert sorted(set(scores.step)) == [1000, 2000]
    assert set(zip(scores.task, scores.metric)) == {
        ("arc_easy", "acc"), ("arc_easy", "acc_norm"), ("lambada_openai", "acc"),
        ("lambada_openai", "perplexity")}
    assert len(scores) == 8 and (scores.n == LIMIT).all() and (scores.doc_limit == LIMIT).all()
    assert (scores.tokens == scores.step.astype("int64") * 2_097_152).all()
    runs = store.read_df(db, "SELECT * FROM runs WHERE source = 'local' ORDER BY step")
    assert list(runs.model_source) == ["EleutherAI/pythia-70m@step1000", "EleutherAI/pythia-70m@step2000"]
    # the commit each branch pointed at when it was loaded (the fake cache's snapshot names)
    assert list(runs.model_commit) == [hashlib.sha1(f"step{s}".encode()).hexdigest() for s in (1000, 2000)]
    assert set(runs.lm_eval_version) == {"0.4.13"} and set(runs.dtype) == {"float32"}
    assert runs.device.eq("cpu").all() and runs.duration_s.gt(0).all() and runs.hostname.notna().all()
    samples = store.read_df(db, "SELECT task, count(*) AS n FROM samples GROUP BY task ORDER BY task")
    assert list(samples.n) == [2 * LIMIT, 2 * LIMIT]
    documents = store.read_df(db, "SELECT task, count(*) AS n FROM documents GROUP BY task ORDER BY task")
    assert list(documents.n) == [LIMIT, LIMIT]  # once per sweep, not once per checkpoint
    # each sample points at the document it was scored on (its fingerprint), never another's text
    unmatched = store.read_df(db, "SELECT count(*) AS n FROM samples LEFT JOIN fingerprints USING (fingerprint_id) "
                                  "ANTI JOIN documents USING (task, shots, doc_id, fingerprint)")
    assert unmatched.n[0] == 0
    sweep = store.read_df(db, "SELECT * FROM sweeps")
    assert (list(sweep.models), list(sweep.planned), list(sweep.done), list(sweep.status)) == (
        ["pythia-70m"], [2], [2], ["done"])
    assert "0 of 2 checkpoints already stored; 2 to evaluate" in result.stdout
    assert "evaluated 2 checkpoint(s)" in result.stdout


def test_stored_scores_equal_lm_eval_run_directly(first_run, checkpoints):
    """The same checkpoint and data through lm-eval's own simple_evaluate and `hf` backend, in
    this process: the same accuracies; perplexity within the fast backend's float tolerance."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from evalsuite.catalog.tasks import load_tasks
    from evalsuite.lmeval import backends, definitions, results

    db, _ = first_run
    suite = load_tasks()
    model = AutoModelForCausalLM.from_pretrained(checkpoints / "step1000").eval()
    lm = HFLM(pretrained=model, tokenizer=backends.load_tokenizer(), batch_size=32)
    configs = definitions.task_configs(suite.select(TASKS.split(",")), suite.data_dir, 0)
    raw = backends.simple_evaluate(lm, configs, 0, LIMIT)
    expected = {(m.task, m.metric): m for m in results.parse_results(raw)}
    stored = _scores(db).query("step == 1000")
    assert len(stored) == len(expected) == 4
    for row in stored.itertuples():
        want = expected[(row.task, row.metric)]
        if row.metric == "perplexity":  # exp of summed loglikelihoods; stderr is a bootstrap
            assert row.value == pytest.approx(want.value, rel=1e-3)
        else:
            assert (row.value, row.stderr) == (want.value, pytest.approx(want.stderr))


def test_second_run_skips_everything(first_run, hf_home):
    db, _ = first_run
    before = len(_scores(db))
    result = run_evalsuite(hf_home, db, *ARGS, "--steps", "1000,2000")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 of 2 checkpoints already stored; 0 to evaluate" in result.stdout
    assert "nothing to do" in result.stdout
    assert len(_scores(db)) == before


def test_items_of_a_sweep_are_its_samples_in_order(first_run, hf_home):
    """A researcher runs a sweep, then asks when each document was learned: `evalsuite items`
    agrees with the samples the sweep stored (two checkpoints: learned at the first when right at
    both, at the second when wrong then right, never when wrong at the second)."""
    import json

    db, _ = first_run
    result = run_evalsuite(hf_home, db, "items", "--model", "pythia-70m", "--task", "arc_easy", "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["doc_id"]: r for r in json.loads(result.stdout)}
    samples = store.read_df(db, "SELECT doc_id, step, correct FROM samples WHERE task = 'arc_easy' ORDER BY step")
    for doc_id, group in samples.groupby("doc_id"):
        first, second = group["correct"].tolist()
        learned = (1000 if first else 2000) if second else None
        assert (rows[doc_id]["learned_at"], rows[doc_id]["flips"]) == (learned, int(first != second))
    assert sorted(rows) == list(range(LIMIT))


def test_killed_sweep_resumes_with_nothing_lost_or_duplicated(tmp_path, hf_home):
    db = tmp_path / "store.duckdb"
    args = [*ARGS, "--backend", "hf"]  # lm-eval's own backend through the CLI, too
    proc = subprocess.Popen(evalsuite_cmd(*args, "--steps", "1000,2000,3000"), env=cli_env(hf_home, db),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # reading while it writes
        if db.exists() and len(_scores(db)) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _scores(db)
    assert len(partial) in (4, 8)  # whole checkpoints only
    killed = store.read_df(db, "SELECT status, done, planned FROM sweeps")
    assert killed.values.tolist() == [["running", len(partial) // 4, 3]]  # the dashboard flags it when stale
    result = run_evalsuite(hf_home, db, *args, "--steps", "1000,2000,3000")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = _scores(db)
    backends = set(store.read_df(db, "SELECT backend FROM runs WHERE source = 'local'").backend)
    assert len(scores) == 12 and backends == {"hf"}
    assert not scores.duplicated(["step", "task", "metric"]).any()
    samples = store.read_df(db, "SELECT step, task, doc_id, count(*) AS n FROM samples GROUP BY ALL")
    assert len(samples) == 3 * 2 * LIMIT and (samples.n == 1).all()
    documents = store.read_df(db, "SELECT count(*) AS n FROM documents")  # written by both sweeps, kept once
    assert documents.n[0] == 2 * LIMIT
    assert f"{len(partial) // 4} of 3 checkpoints already stored" in result.stdout


def test_force_replaces_instead_of_adding(first_run, hf_home):
    db, _ = first_run
    old_runs = set(_scores(db).run_id)
    result = run_evalsuite(hf_home, db, *ARGS, "--steps", "2000", "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = _scores(db)
    assert len(scores) == 8 and not scores.duplicated(["step", "task", "metric"]).any()
    assert set(scores.query("step == 2000").run_id).isdisjoint(old_runs)
    samples = store.read_df(db, "SELECT count(*) AS n FROM samples WHERE step = 2000")
    assert samples.n[0] == 2 * LIMIT


def test_unreachable_hub_fails_fast_naming_model_and_revision(tmp_path, hf_home):
    started = time.monotonic()
    result = run_evalsuite(hf_home, tmp_path / "s.duckdb", *ARGS, "--steps", "4000", timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("evalsuite: error: cannot load EleutherAI/pythia-70m revision step4000")
    assert "unreachable" in last and "--model-path" in last and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60  # start-up included; never the Hub client's retries


def test_cleanup_removes_finished_revisions_from_the_hf_cache(tmp_path, hf_home):
    import shutil

    home = tmp_path / "hf"
    shutil.copytree(hf_home, home)
    repo = home / "hub" / "models--EleutherAI--pythia-70m"
    result = run_evalsuite(home, tmp_path / "s.duckdb", *ARGS, "--tasks", "arc_easy", "--limit", "2",
                           "--steps", "1000", "--cleanup")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "removed EleutherAI/pythia-70m@step1000 from the HF cache" in result.stdout
    assert sorted(p.name for p in (repo / "refs").iterdir()) == ["step2000", "step3000"]
    assert len(list((repo / "snapshots").iterdir())) == 2


def test_hub_data_unreachable_fails_fast_pointing_at_the_shipped_data(tmp_path, hf_home):
    started = time.monotonic()
    result = run_evalsuite(hf_home, tmp_path / "s.duckdb", *ARGS, "--steps", "1000", "--data-dir", "hub", timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("evalsuite: error: task 'arc_easy': cannot download allenai/ai2_arc: the Hub")
    assert "use --data-dir" in last and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_sigterm_stores_the_finished_checkpoints_and_says_one_line(tmp_path, hf_home):
    db = tmp_path / "store.duckdb"
    # more documents than the other tests: the next checkpoint is still being scored when the signal comes
    proc = subprocess.Popen(evalsuite_cmd(*ARGS, "--limit", "60", "--steps", "1000,2000,3000"),
                            env=cli_env(hf_home, db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and len(_scores(db)) >= 4:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "evalsuite: interrupted; finished checkpoints are stored"
    assert "Traceback" not in err
    scores = _scores(db)
    assert len(scores) in (4, 8) and not scores.duplicated(["step", "task", "metric"]).any()
    assert store.read_df(db, "SELECT status FROM sweeps").status.tolist() == ["stopped"]
