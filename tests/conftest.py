"""Shared fixtures: tiny GPT-NeoX checkpoints built here with the real Pythia tokenizer, served
through a fake Hugging Face cache so `--model pythia-70m --steps 1000` takes the real repo-id +
revision path offline, and a helper that runs the real `evalsuite` command in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
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


APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def open_app(db: Path, monkeypatch, timeout: float = 60, **params):
    """The real app script under Streamlit's AppTest on store `db`, its URL holding `params`, run once."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EVALSUITE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def assert_clean(at) -> None:
    """No exception and no error element on the page, and every chart on it a valid Vega-Lite
    spec (the dashboard does not check its specs as it draws them: dashboard/draw.py)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    for chart in at.get("vega_lite_chart"):
        assert_vega_lite(json.loads(chart.proto.spec))


def assert_vega_lite(spec: dict) -> None:
    """`spec` is valid against the Vega-Lite JSON schema Altair ships (the version it writes)."""
    from altair.utils.schemapi import validate_jsonschema
    from altair.vegalite.v6.schema.core import load_schema

    error = validate_jsonschema(spec, load_schema(), raise_error=False)
    assert error is None, f"not a valid Vega-Lite spec: {error.message[:500]} at {list(error.absolute_path)}"


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until the dashboard at `url` (its /_stcore/health) answers 200; fails if `proc` ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else proc.returncode
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"dashboard not healthy at {url} after {timeout_s} s")
