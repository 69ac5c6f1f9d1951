"""Sweeps on a Ray cluster: one head and two nodes that each declare a GPU, all on this machine
(ray.cluster_utils.Cluster), evaluating tiny checkpoints through the fake HF cache. Workers take
GPU slots (packing: 1/4 of a GPU each for pythia-70m) but score on the CPU, in float32, one
thread each (tests/ray_driver.py). The driver is a separate process, as on a real cluster.

The cluster runs in a process of its own (tests/ray_cluster_host.py): Ray never enters the
pytest process. Proves: the same stored scores and samples as a single-process sweep, bit for bit; a worker
SIGKILLed mid-job and a node lost mid-sweep cost nothing (every checkpoint stored once, none
twice); a corrupt checkpoint is reported once, by name, while the others finish.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evalsuite import store
from evalsuite.sweep.cluster_worker import remove_stale_folders

from conftest import cli_env

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).resolve().parent / "ray_driver.py"
HOST = Path(__file__).resolve().parent / "ray_cluster_host.py"
ARGS = ["--model", "pythia-70m", "--tasks", "arc_easy", "--limit", "6"]
METRICS = 2  # arc_easy: acc, acc_norm


class HostedCluster:
    """The cluster of tests/ray_cluster_host.py, driven through its stdin; `env` is what a driver
    joining it needs besides its own (Ray's temp dir, no token)."""

    def __init__(self, process: subprocess.Popen, env: dict, log: Path):
        self.process, self.env = process, env
        self.address = process.stdout.readline().strip()
        assert self.address, f"the cluster did not start: {log.read_text()[-3000:]}"

    def command(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"


@pytest.fixture(scope="module")
def cluster(hf_home):
    """Head (CPU only) + two nodes with 4 CPUs and 1 GPU each, in their own process; every
    node's workers read the fake HF cache (their environment is the one they start with, as on
    a real node). Loopback only (conftest); no token (the tests of `--ray local` cover Ray's
    token authentication)."""
    temp = Path(tempfile.mkdtemp(prefix="esrt-"))  # Ray's temp dir, and where it records the cluster's
    (temp / "ray").mkdir()  # address for ray.init(): not /tmp/ray, where others' ray.init() would look
    ray_env = dict(RAY_TMPDIR=str(temp), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env = {**cli_env(hf_home, temp / "unused.duckdb"), **ray_env}
    log = temp / "host.log"  # a file, not a pipe: Ray's logs would fill a pipe nobody reads
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, str(HOST), "2"], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=sink, text=True)
    try:
        yield HostedCluster(process, ray_env, log)
    finally:
        process.stdin.close()
        process.wait(timeout=60)
        remove_stale_folders(Path(tempfile.gettempdir()))  # the killed and the lost worker's
        shutil.rmtree(temp, ignore_errors=True)


def _driver(cluster, hf_home: Path, db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *ARGS, "--db", str(db), "--ray", cluster.address, *args],
                            env={**cli_env(hf_home, db), **cluster.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _workers(db: Path):
    try:
        return store.read_df(db, "SELECT * FROM workers ORDER BY worker")
    except Exception:  # not created yet
        return None


def _wait_for_a_busy_worker(db: Path, proc: subprocess.Popen, timeout: float = 180):
    """The first worker the driver has given jobs to (it is loading or scoring them now)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _workers(db)
        if workers is not None:
            busy = workers[(workers.state == "evaluating") & workers.pid.notna()]
            if len(busy):
                return busy.iloc[0]
        time.sleep(0.1)
    raise AssertionError(f"no worker got a job (driver exit status {proc.poll()})")


def _stored_once(db: Path, steps: list[int]) -> None:
    """Each step's scores and samples exactly once: nothing lost, nothing twice, nothing partial."""
    scores = store.read_df(db, "SELECT step, task, metric FROM scores WHERE source = 'local'")
    assert sorted(set(scores.step)) == steps and len(scores) == METRICS * len(steps)
    assert not scores.duplicated().any()
    samples = store.read_df(db, "SELECT step, doc_id, count(*) AS n FROM samples GROUP BY ALL")
    assert len(samples) == 6 * len(steps) and (samples.n == 1).all()
    runs = store.read_df(db, "SELECT step FROM runs WHERE source = 'local'")
    assert sorted(runs.step) == steps


def _single_process(hf_home: Path, db: Path, steps: str, *more: str) -> None:
    """The plain CLI in one process with one torch thread (as each worker), checking it never
    imported ray."""
    code = ("import sys; from evalsuite.cli import main; status = main(sys.argv[1:]); "
            "print('ray imported:', 'ray' in sys.modules); sys.exit(status)")
    env = dict(cli_env(hf_home, db), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", code, "run", *ARGS, "--tasks", "arc_easy,lambada_openai",
                             "--steps", steps, "--device", "cpu", "--db", str(db), *more],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray imported: False" in result.stdout


def _rows(db: Path):
    scores = store.read_df(db, "SELECT step, task, metric, value, stderr, n, doc_limit, dtype FROM scores "
                               "WHERE source = 'local' ORDER BY step, task, metric")
    samples = store.read_df(db, "SELECT step, task, doc_id, target, correct, correct_norm, loglikelihoods, "
                                "is_greedy FROM samples ORDER BY step, task, doc_id")
    return scores, samples


def test_cluster_stores_what_one_process_stores_bit_for_bit(cluster, hf_home, tmp_path):
    alone, spread = tmp_path / "alone.duckdb", tmp_path / "ray.duckdb"
    _single_process(hf_home, alone, "1000,2000,3000")
    status, out, err = _finish(_driver(cluster, hf_home, spread, "--tasks", "arc_easy,lambada_openai",
                                       "--steps", "1000,2000,3000", "--workers", "3"))
    assert status == 0, err[-3000:]
    (want_scores, want_samples), (scores, samples) = _rows(alone), _rows(spread)
    assert len(scores) == 12 and scores.equals(want_scores)  # value and stderr: float equality
    assert len(samples) == 36 and samples.drop(columns=["loglikelihoods", "is_greedy"]).equals(
        want_samples.drop(columns=["loglikelihoods", "is_greedy"]))
    assert [list(x) for x in samples.loglikelihoods] == [list(x) for x in want_samples.loglikelihoods]
    assert [list(x) for x in samples.is_greedy] == [list(x) for x in want_samples.is_greedy]
    documents = "SELECT task, shots, doc_id, fingerprint, prompt FROM documents ORDER BY ALL"
    stored = store.read_df(spread, documents)
    assert len(stored) == len(set(samples.task + samples.doc_id.astype(str)))  # each document once
    assert stored.equals(store.read_df(alone, documents))  # and the same as one process stores
    # packing: pythia-70m takes a quarter of a GPU, so the third worker shares a node's only GPU
    workers = _workers(spread)
    assert len(workers) == 3 and set(workers.gpu) == {"0 (1/4)"} and set(workers.state) == {"stopped"}
    assert sorted(workers.groupby("node_id").size()) == [1, 2]
    assert workers.done.sum() == 3
    sweep = store.read_df(spread, "SELECT planned, done, status FROM sweeps").values.tolist()
    assert sweep == [[3, 3, "done"]]
    assert "on Ray: 3 worker(s) on 2 node(s)" in out


def test_a_worker_killed_mid_job_and_a_corrupt_checkpoint(cluster, hf_home, checkpoints, tmp_path):
    """Six checkpoints, step 4000's weights truncated; a worker SIGKILLed as soon as it holds
    jobs: its jobs run again elsewhere, the corrupt one is named once, the rest are stored once."""
    root = tmp_path / "ckpts"
    for i, step in enumerate(range(1000, 7000, 1000)):
        shutil.copytree(checkpoints / f"step{1000 * (i % 3 + 1)}", root / f"step{step}")
    weights = next((root / "step4000").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    db = tmp_path / "s.duckdb"
    proc = _driver(cluster, hf_home, db, "--model-path", str(root), "--steps", "1000:6000", "--workers", "2")
    victim = _wait_for_a_busy_worker(db, proc)
    os.kill(int(victim.pid), signal.SIGKILL)
    status, out, err = _finish(proc)
    assert status == 2, err[-3000:]  # as a local sweep: the failed checkpoint makes the exit status 2
    assert err.count("not evaluated: pythia-70m step 4000: ") == 1 and "cannot load" in err
    _stored_once(db, [1000, 2000, 3000, 5000, 6000])
    assert "re-run after their worker was lost: pythia-70m step" in out
    workers = _workers(db)
    assert workers.loc[workers.worker == victim.worker, "state"].item() == "lost"
    assert len(workers) >= 3  # the lost one was replaced
    assert store.read_df(db, "SELECT done, status FROM sweeps").values.tolist() == [[5, "done"]]


def test_documents_are_stored_when_a_workers_first_checkpoint_fails(cluster, hf_home, checkpoints, tmp_path):
    """One worker whose first checkpoint cannot be loaded: the documents come with its first
    record that does exist, and are stored whole."""
    root = tmp_path / "ckpts"
    for step in (1000, 2000):
        shutil.copytree(checkpoints / f"step{step}", root / f"step{step}")
    weights = next((root / "step1000").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    db = tmp_path / "s.duckdb"
    status, out, err = _finish(_driver(cluster, hf_home, db, "--model-path", str(root), "--steps", "1000:2000",
                                       "--workers", "1"))
    assert status == 2 and err.count("not evaluated: pythia-70m step 1000: ") == 1, err[-3000:]
    _stored_once(db, [2000])
    documents = store.read_df(db, "SELECT task, doc_id FROM documents ORDER BY doc_id")
    assert documents.values.tolist() == [["arc_easy", i] for i in range(6)]


def test_a_node_lost_mid_sweep(cluster, hf_home, checkpoints, tmp_path):
    """The node of the first busy worker goes away (its raylet and workers killed): the sweep
    ends complete on the other node. A fresh node takes its place for the tests after."""
    root = tmp_path / "ckpts"
    for i, step in enumerate(range(1000, 7000, 1000)):
        os.makedirs(root, exist_ok=True)
        (root / f"step{step}").symlink_to(checkpoints / f"step{1000 * (i % 3 + 1)}")
    db = tmp_path / "s.duckdb"
    proc = _driver(cluster, hf_home, db, "--model-path", str(root), "--steps", "1000:6000", "--workers", "2")
    victim = _wait_for_a_busy_worker(db, proc)
    try:
        cluster.command(f"remove {victim.node_id}")
        status, out, err = _finish(proc)
    finally:
        cluster.command("add")
    assert status == 0, err[-3000:]
    _stored_once(db, [1000, 2000, 3000, 4000, 5000, 6000])
    assert "re-run after their worker was lost" in out
    workers = _workers(db)
    assert "lost" in set(workers.state)
    assert set(workers.loc[workers.done > 0, "node_id"]) - {victim.node_id}  # others finished it


def test_a_worker_death_is_charged_to_the_checkpoint_whose_loading_kills_it(cluster, hf_home, checkpoints, tmp_path):
    """One worker; loading step 2000 ends the worker's process (tests/ray_driver.py --kill-loading).
    Its first worker holds steps 1000 and 2000 when it dies: neither is charged, each runs again
    alone; then 2000 kills three workers of its own and is reported, while 1000 and 3000 are
    stored. Ray's death paragraphs stay off stdout: one line of the sweep's per lost worker."""
    root = tmp_path / "ckpts"
    for step in (1000, 2000, 3000):
        os.makedirs(root, exist_ok=True)
        (root / f"step{step}").symlink_to(checkpoints / f"step{step}")
    db = tmp_path / "s.duckdb"
    status, out, err = _finish(_driver(cluster, hf_home, db, "--model-path", str(root), "--steps", "1000:3000",
                                       "--workers", "1", "--kill-loading", "2000"))
    assert status == 2, err[-3000:]
    assert err.count("not evaluated: pythia-70m step 2000: its worker died 3 times") == 1, err[-3000:]
    assert "not evaluated: pythia-70m step 1000" not in err
    _stored_once(db, [1000, 3000])
    lost = [line for line in out.splitlines() if line.startswith("lost Ray worker")]
    # A replacement lost before it took any job (seen in CI on a loaded machine: "worker 1 on its
    # node with no job in flight") is neither charged nor re-run; it only adds a worker.
    idle = [line for line in lost if line.endswith("with no job in flight")]
    lost = [line for line in lost if line not in idle]
    assert lost[0].endswith("with pythia-70m step 1000 and pythia-70m step 2000 in flight: each runs again, alone")
    assert [line.split(" while it ran ")[-1] for line in lost[1:]] == [
        f"pythia-70m step 2000 (death {n} of 3 for it{'; not run again' if n == 3 else ''})" for n in (1, 2, 3)]
    assert out.strip().splitlines()[-1] == \
        f"on Ray: {5 + len(idle)} worker(s) on 2 node(s); re-run after their worker was lost: " \
        "pythia-70m steps 1000, 2000"
    assert "A worker died" not in out and "(raylet)" not in out


def test_a_model_with_its_own_tokenizer_stores_what_one_process_stores(cluster, hf_home, tmp_path):
    """A Llama-shaped model whose tokenizer (Llama 2's kind: a prefix space, a BOS token) is saved
    beside each checkpoint: the driver sends the tokenizer's files to the workers, which score
    with it, as one process does."""
    import tiny_models

    root = tmp_path / "llama"
    tok = tiny_models.tokenizer("llama", root / "step1")
    for step in (1, 2):
        model = tiny_models.build(tiny_models.SUPPORTED["LlamaForCausalLM"], tok, seed=step)
        model.save_pretrained(root / f"step{step}")
        tok.save_pretrained(root / f"step{step}")
    own = ["--model", "tiny-llama", "--model-path", str(root)]
    alone, spread = tmp_path / "alone.duckdb", tmp_path / "ray.duckdb"
    _single_process(hf_home, alone, "1,2", *own)
    status, out, err = _finish(_driver(cluster, hf_home, spread, "--tasks", "arc_easy,lambada_openai",
                                       "--steps", "1,2", "--workers", "2", *own))
    assert status == 0, err[-3000:]
    (want_scores, want_samples), (scores, samples) = _rows(alone), _rows(spread)
    assert len(scores) == 8 and scores.equals(want_scores)
    assert [list(x) for x in samples.loglikelihoods] == [list(x) for x in want_samples.loglikelihoods]
    assert set(store.read_df(spread, "SELECT model FROM scores WHERE source = 'local'").model) == {"tiny-llama"}
