"""`evalsuite run --ray local`: a private Ray instance on this machine, and what it must never do
(listen beyond 127.0.0.1, outlive its sweep); the --ray/--workers arguments; what a worker is sent.

The lifecycle test runs the real command three times on ten tiny checkpoints with two CPU
workers: stopped by Ctrl-C, then SIGKILLed, then to the end; another stops it by SIGTERM and by
SIGHUP. After each stop, no process of the instance may be left within 10 s: the test finds them
by session id, by the run's TMPDIR and by an environment marker (Instance), so it sees the
processes whose environment Ray's setproctitle rewrote, even those orphaned by a killed driver.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from evalsuite import store
from evalsuite.cli import main
from evalsuite.sweep.cluster_worker import pack_files, unpack_files

from conftest import cli_env, evalsuite_cmd

pytestmark = pytest.mark.slow

STEPS = list(range(1000, 11000, 1000))
METRICS = 4  # arc_easy acc, acc_norm; lambada_openai acc, perplexity


class Instance:
    """Every process of one `--ray local` run, found as the test sees them, not as the reaper does:
    the driver is started in a session of its own, so every process it starts (Ray's GCS server,
    raylet, agents and workers: setproctitle does not change a session) has the driver's pid as its
    session id; the reaper starts its own session, and is found by the marker in its environment;
    and any process with a file, its working directory or an argument under the run's TMPDIR
    (where the instance's folder is) belongs to it too."""

    def __init__(self):
        self.mark = uuid.uuid4().hex
        self.tmp = Path(tempfile.mkdtemp(prefix="esrt-"))  # short: Ray's socket paths must fit 107 bytes
        self.driver = -1

    def env(self, base: dict) -> dict:
        return dict(base, EVALSUITE_TEST_MARK=self.mark, TMPDIR=str(self.tmp))

    def pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid() and self._belongs(entry):
                found.append(int(entry.name))
        return found

    def _belongs(self, proc: Path) -> bool:
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) == self.driver:  # session id
                return True
            if f"EVALSUITE_TEST_MARK={self.mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return True
            if str(self.tmp).encode() in (proc / "cmdline").read_bytes():
                return True
            links = [os.readlink(proc / "cwd")] + [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            return False
        return any(link.startswith(str(self.tmp)) for link in links)

    def described(self) -> list[str]:
        return [Path(f"/proc/{p}/cmdline").read_bytes()[:80].decode(errors="replace") for p in self.pids()]

    def gone(self, within_s: float = 10) -> bool:
        """No process of the instance left within `within_s` (the issue's bound)."""
        deadline = time.monotonic() + within_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self.pids()

    def remove(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _listening(pids: list[int]) -> set:
    """The addresses these processes accept TCP connections on (IPv4 and IPv6)."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
                found.add(ipaddress.ip_address(words))
    return found


def _on_loopback(address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _stored(db: Path) -> int:
    try:
        return int(store.read_df(db, "SELECT count(DISTINCT step) AS n FROM scores WHERE source = 'local'").n[0])
    except Exception:  # no store yet
        return 0


def _start(root: Path, db: Path, hf_home: Path, instance: Instance) -> subprocess.Popen:
    args = ["run", "--model", "pythia-70m", "--model-path", str(root), "--steps", "1000:10000",
            "--tasks", "arc_easy,lambada_openai", "--limit", "40", "--device", "cpu", "--ray", "local"]
    proc = subprocess.Popen(evalsuite_cmd(*args), env=instance.env(cli_env(hf_home, db)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    instance.driver = proc.pid
    return proc


def _wait_until_stored(db: Path, proc: subprocess.Popen, n: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _stored(db) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.communicate()[1][-2000:]}"
    assert _stored(db) >= n


def test_local_instance_on_loopback_stopped_killed_and_resumed(tmp_path, checkpoints, hf_home):
    root = tmp_path / "ckpts"
    root.mkdir()
    for i, step in enumerate(STEPS):  # ten checkpoints, three distinct weights
        (root / f"step{step}").symlink_to(checkpoints / f"step{1000 * (i % 3 + 1)}")
    db = tmp_path / "s.duckdb"

    # Ctrl-C in a terminal: SIGINT to the whole process group
    instance = Instance()
    proc = _start(root, db, hf_home, instance)
    _wait_until_stored(db, proc, 1)
    listening = _listening(instance.pids())
    assert listening and all(_on_loopback(a) for a in listening), listening
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted; finished checkpoints are stored" in err
    assert instance.gone(), instance.described()
    instance.remove()
    first = _stored(db)
    assert 1 <= first < len(STEPS)

    # the driver SIGKILLed: no cleanup code of its own runs
    instance = Instance()
    proc = _start(root, db, hf_home, instance)
    _wait_until_stored(db, proc, first + 1)
    proc.kill()
    proc.communicate(timeout=60)
    assert instance.gone(), instance.described()
    instance.remove()
    second = _stored(db)
    assert second < len(STEPS)
    sweeps = store.read_df(db, "SELECT status FROM sweeps ORDER BY started_at").status.tolist()
    assert sweeps == ["stopped", "running"]  # a killed sweep is not marked; the dashboard flags it

    # the same command again: only what is missing, then every checkpoint stored once
    instance = Instance()
    proc = _start(root, db, hf_home, instance)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"{second} of {len(STEPS)} checkpoints already stored; {len(STEPS) - second} to evaluate" in out
    assert "on Ray: 2 worker(s) on 1 node(s)" in out
    assert not instance.pids()  # a sweep that ends waits for its reaper
    instance.remove()
    scores = store.read_df(db, "SELECT step, task, metric FROM scores WHERE source = 'local'")
    assert sorted(set(scores.step)) == STEPS and len(scores) == METRICS * len(STEPS)
    assert not scores.duplicated().any()
    samples = store.read_df(db, "SELECT step, task, doc_id, count(*) AS n FROM samples GROUP BY ALL")
    assert len(samples) == 2 * 40 * len(STEPS) and (samples.n == 1).all()


def test_sigterm_and_sighup_stop_a_local_sweep_in_one_line_leaving_no_process(tmp_path, checkpoints, hf_home):
    """The driver alone gets the signal (a service manager's stop, a closed terminal or ssh
    session): it ends with one line, and within 10 s no process of its instance is left."""
    root = tmp_path / "ckpts"
    root.mkdir()
    for i, step in enumerate(STEPS):
        (root / f"step{step}").symlink_to(checkpoints / f"step{1000 * (i % 3 + 1)}")
    db = tmp_path / "s.duckdb"
    for sig in (signal.SIGTERM, signal.SIGHUP):
        instance = Instance()
        proc = _start(root, db, hf_home, instance)
        _wait_until_stored(db, proc, _stored(db) + 1)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err[-3000:]
        assert err.strip().splitlines()[-1] == \
            f"evalsuite: stopped by {sig.name}; finished checkpoints are stored", err[-3000:]
        assert "Traceback" not in err and "SIGABRT" not in err and "Stack trace" not in err
        assert instance.gone(), instance.described()
        instance.remove()
    sweeps = store.read_df(db, "SELECT status FROM sweeps ORDER BY started_at").status.tolist()
    assert sweeps == ["stopped", "stopped"]


@pytest.mark.parametrize("args, message", [
    (["--ray", "10.0.0.1"], "--ray '10.0.0.1': use local, auto or HOST:PORT"),
    (["--workers", "2"], "--workers needs --ray"),
    (["--ray", "127.0.0.1:9"], "--ray 127.0.0.1:9: nothing answers there"),
    (["--ray", "[::1]:9"], "--ray [::1]:9: nothing answers there"),  # an IPv6 head's address is accepted
    (["--ray", "127.0.0.1:70000"], "--ray 127.0.0.1:70000: the port must be 1 to 65535"),
])
def test_bad_ray_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    """Checked before ray is imported: in this process, which must never import it (its threads
    would deadlock a later test's fork)."""
    status = main(["run", "--model", "pythia-70m", "--steps", "1000", "--db", str(tmp_path / "s.duckdb"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err[-1].startswith(f"evalsuite: error: {message}")


def test_no_cluster_to_join_is_a_one_line_error(tmp_path, hf_home):
    env = dict(cli_env(hf_home, tmp_path / "s.duckdb"), RAY_TMPDIR=str(tmp_path))  # where `auto` looks
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(evalsuite_cmd("run", "--model", "pythia-70m", "--steps", "1000", "--ray", "auto"),
                            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("evalsuite: error: cannot join the Ray cluster at auto: ")


def test_workers_are_sent_the_tokenizer_and_only_the_chosen_tasks_data(tmp_path):
    from evalsuite.cli import build_parser
    from evalsuite.lmeval import backends
    from evalsuite.paths import TASK_DATA_DIR, TOKENIZER_DIR
    from evalsuite.sweep.config import config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--model", "pythia-70m", "--tasks", "arc_easy,piqa"]))
    unpack_files(pack_files(cfg), tmp_path)
    shipped = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [p for p in shipped if p.startswith("tasks/")] == [
        "tasks/arc_easy/test.jsonl", "tasks/arc_easy/train.jsonl", "tasks/arc_easy/validation.jsonl",
        "tasks/piqa/validation.jsonl"]
    for name in ("arc_easy/test.jsonl", "piqa/validation.jsonl"):
        assert (tmp_path / "tasks" / name).read_bytes() == (TASK_DATA_DIR / name).read_bytes()
    text = "Question: which gas do plants take in?\nAnswer: carbon dioxide"
    assert backends.load_tokenizer(tmp_path / "tokenizer")(text)["input_ids"] == \
        backends.load_tokenizer(TOKENIZER_DIR)(text)["input_ids"]


def test_workers_are_sent_a_models_own_tokenizer_but_not_its_weights(tmp_path, checkpoints):
    from evalsuite.cli import build_parser
    from evalsuite.lmeval import backends
    from evalsuite.sweep.config import config_from_args

    args = ["run", "--model", "my-run", "--model-path", str(checkpoints), "--tasks", "arc_easy"]
    cfg = config_from_args(build_parser().parse_args(args))
    unpack_files(pack_files(cfg), tmp_path)
    own = tmp_path / "tokenizers" / "0"
    sent = {p.name for p in own.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "config.json"} <= sent
    assert not [name for name in sent if name.endswith((".safetensors", ".bin"))], sent
    text = "Question: which gas do plants take in?\nAnswer: carbon dioxide"
    first = next(iter(cfg.checkpoints["my-run"].values())).local_dir
    assert backends.load_tokenizer(own)(text)["input_ids"] == backends.load_tokenizer(first)(text)["input_ids"]
