"""Prefetcher overlaps loading with work, in order, errors handed back; cleanup_revision frees
one revision of a real-layout Hugging Face cache and leaves blobs other revisions share."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from evalsuite.sweep.cleanup import cleanup_revision
from evalsuite.sweep.prefetch import Prefetcher


def test_yields_in_order_and_hands_back_errors():
    def load(n):
        if n == 2:
            raise OSError("no checkpoint 2")
        return n * 10

    got = list(Prefetcher(load, [0, 1, 2, 3]))
    assert [item for item, _ in got] == [0, 1, 2, 3]
    assert [r for _, r in got if not isinstance(r, Exception)] == [0, 10, 30]
    assert isinstance(got[2][1], OSError)


def test_next_load_overlaps_work_and_only_one_ahead():
    """While the caller works on item n, item n+1 loads (the caller sees it start and finish
    without taking it), and n+2 does not start before the caller takes n+1."""
    began = [threading.Event() for _ in range(4)]
    done = [threading.Event() for _ in range(4)]

    def load(n):
        began[n].set()
        done[n].set()
        return n

    loads = iter(Prefetcher(load, range(4)))
    for n in range(4):
        item, result = next(loads)
        assert (item, result) == (n, n)
        if n + 1 < 4:  # the caller "evaluates" n: the next one is loading meanwhile ...
            assert began[n + 1].wait(30) and done[n + 1].wait(30)
        if n + 2 < 4:  # ... and only that one
            assert not began[n + 2].is_set()
    assert next(loads, None) is None


def test_leaving_early_stops_further_loads():
    loaded = []

    def load(n):
        loaded.append(n)
        return n

    for item, _ in Prefetcher(load, range(100)):
        if item == 1:
            break
    time.sleep(0.1)
    assert len(loaded) <= 3


def _fake_cache(root: Path) -> Path:
    """models--EleutherAI--pythia-70m with step1000 and step2000 sharing config.json's blob."""
    repo = root / "models--EleutherAI--pythia-70m"
    blobs, refs = repo / "blobs", repo / "refs"
    blobs.mkdir(parents=True)
    refs.mkdir()
    files = {"shared": b'{"model_type": "gpt_neox"}', "w1000": b"a" * 1000, "w2000": b"b" * 2000}
    for name, data in files.items():
        (blobs / name).write_bytes(data)
    for step, commit, weights in (("step1000", "a" * 40, "w1000"), ("step2000", "b" * 40, "w2000")):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").symlink_to(Path("../../blobs/shared"))
        (snap / "model.safetensors").symlink_to(Path("../../blobs") / weights)
        (refs / step).write_text(commit)
    return repo


def test_cleanup_removes_one_revision_and_keeps_shared_blobs(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    repo = _fake_cache(tmp_path)
    freed = cleanup_revision("EleutherAI/pythia-70m", "step1000", cache_dir=tmp_path)
    assert freed == 1000  # the step1000 weights; config.json's blob is shared
    assert not (repo / "snapshots" / ("a" * 40)).exists()
    assert not (repo / "refs" / "step1000").exists()
    kept = try_to_load_from_cache("EleutherAI/pythia-70m", "config.json", cache_dir=tmp_path, revision="step2000")
    assert kept and Path(kept).read_bytes() == b'{"model_type": "gpt_neox"}'
    assert try_to_load_from_cache("EleutherAI/pythia-70m", "model.safetensors", cache_dir=tmp_path,
                                  revision="step2000")


def test_cleanup_by_commit_hash_and_of_missing_things_is_harmless(tmp_path):
    repo = _fake_cache(tmp_path)
    assert cleanup_revision("EleutherAI/pythia-70m", "step999", cache_dir=tmp_path) == 0
    assert cleanup_revision("EleutherAI/pythia-160m", "step1000", cache_dir=tmp_path) == 0
    assert cleanup_revision("EleutherAI/pythia-70m", "b" * 40, cache_dir=tmp_path) > 0
    assert not (repo / "snapshots" / ("b" * 40)).exists()
    assert cleanup_revision("EleutherAI/pythia-70m", "step1000", cache_dir=tmp_path / "nowhere") == 0


def test_ahead_must_be_positive():
    with pytest.raises(ValueError):
        Prefetcher(lambda n: n, [1], ahead=0)


BLOCKED_LOAD = """
import threading
from evalsuite.sweep.prefetch import Prefetcher

started, never = threading.Event(), threading.Event()

def load(n):
    if n == 1:  # the next checkpoint's download: it never ends
        started.set()
        never.wait()
    return n

for item, _ in Prefetcher(load, [0, 1]):
    started.wait()
    print("evaluating", item, flush=True)
    never.wait()  # the evaluation of checkpoint 0, until Ctrl-C
"""


def test_ctrl_c_does_not_wait_for_an_in_flight_load():
    """The interpreter joins ThreadPoolExecutor threads at exit: with one, this process would
    hang until the blocked load ended. The prefetch thread is a daemon: it exits at once."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", BLOCKED_LOAD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "evaluating 0"  # load 1 is now in flight
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a hang, not a slow exit, is the failure
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
