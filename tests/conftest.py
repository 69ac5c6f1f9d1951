"""Shared fixtures: tiny GPT-NeoX checkpoints built here with the real Pythia tokenizer, served
through a fake Hugging Face cache so `--model pythia-70m --steps 1000` takes the real repo-id +
revision path offline, and a helper that runs the real `evalsuite` command in a subprocess."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.lmeval.demo import tiny_model, tokenizer

# Ray, wherever a test starts it (always in a subprocess, which inherits this: the test cluster,
# a driver, `--ray local`), binds 127.0.0.1 only. Ray reads it once, when imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

CACHED_STEPS = [1000, 2000, 3000]  # in the fake cache; any other step is "not downloaded"
CLOSED_PORT_HUB = "http://127.0.0.1:9"  # an unreachable Hub that answers at once


@pytest.fixture(autouse=True)
def ray_stays_out_of_this_process():
    """Tests reach Ray only through subprocesses: the threads Ray's clients start in a process
    would deadlock a later test's fork there (lm-eval's bootstrap uses a process pool), a hang
    far from its cause. This names the test that imported it instead."""
    yield
    assert "ray" not in sys.modules, "this test imported ray into the pytest process: use a subprocess"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> Path:
    """DIR/step<N>/ for CACHED_STEPS: pythia-14m-shaped, random weights, one seed per step."""
    root = tmp_path_factory.mktemp("checkpoints")
    tok = tokenizer()
    for step in CACHED_STEPS:
        tiny_model(seed=step).save_pretrained(root / f"step{step}")
        tok.save_pretrained(root / f"step{step}")
    return root


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, checkpoints) -> Path:
    """$HF_HOME/hub/models--EleutherAI--pythia-70m/{snapshots/<sha>/, refs/step<N>}, as the
    Hub client lays out a download of each revision."""
    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / "models--EleutherAI--pythia-70m"
    (repo / "refs").mkdir(parents=True)
    for step in CACHED_STEPS:
        sha = hashlib.sha1(f"step{step}".encode()).hexdigest()
        shutil.copytree(checkpoints / f"step{step}", repo / "snapshots" / sha)
        (repo / "refs" / f"step{step}").write_text(sha)
    return home


def cli_env(hf_home: Path, db: Path) -> dict:
    env = dict(os.environ, HF_HOME=str(hf_home), HF_ENDPOINT=CLOSED_PORT_HUB, EVALSUITE_DB=str(db),
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    env.pop("HF_HUB_OFFLINE", None)  # the point is the real online path failing fast
    return env


def evalsuite_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "evalsuite", *args]


def run_evalsuite(hf_home: Path, db: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(evalsuite_cmd(*args), env=cli_env(hf_home, db), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
