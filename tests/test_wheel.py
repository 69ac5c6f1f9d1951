"""`evalsuite dashboard` and `streamlit run dashboard/app.py` serve, from a wheel built from the
repository and installed into a fresh virtual environment, and from the checkout itself.

The fresh environment gets evalsuite from the wheel only (`pip install --no-deps --no-index`);
its dependencies come from this environment's site-packages through a .pth line, so the test
downloads nothing. A path line in a .pth does not run the .pth files found there, so this
environment's editable install of the checkout is not visible in the fresh one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from evalsuite import store

from conftest import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_of_the_working_tree(dest: Path) -> Path:
    """The files git would commit (tracked, and new ones it does not ignore): a build in the
    checkout itself would leave build/ and egg-info behind."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes((ROOT / name).read_bytes())
    return dest


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> Path:
    """A fresh venv with evalsuite installed from a wheel of the working tree; its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_of_the_working_tree(work / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(work / "dist"), str(source)], check=True, capture_output=True, timeout=600)
    wheel, = (work / "dist").glob("evalsuite-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    asked = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", asked], capture_output=True, text=True,
                                  check=True).stdout.strip())
    (purelib / "deps-from-the-test-env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=600)
    return venv / "bin"


def _serve_and_check(command: list[str], cwd: Path, port: int, env: dict | None = None) -> None:
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout_s=180)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_wheel_holds_the_dashboard_and_the_data_it_reads(wheel_env, tmp_path):
    where = subprocess.run(
        [str(wheel_env / "python"), "-c",
         "import importlib.util, dashboard, evalsuite.paths as p; "
         "print(importlib.util.find_spec('dashboard.app').origin); print(p.ROOT); print(p.TASKS_YAML.is_file()); "
         "print(p.TOKENIZER_DIR.is_dir()); print((p.RESULTS_DIR / 'published.csv').is_file())"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120).stdout.split()
    venv = wheel_env.parent
    assert Path(where[0]).is_relative_to(venv) and not Path(where[0]).is_relative_to(ROOT), where
    assert Path(where[1]) == venv / "share" / "evalsuite"
    assert where[2:] == ["True", "True", "True"]


def test_evalsuite_dashboard_serves_from_the_wheel(wheel_env, tmp_path):
    port = _free_port()
    db = tmp_path / "store.duckdb"
    _serve_and_check([str(wheel_env / "evalsuite"), "dashboard", "--port", str(port), "--db", str(db)], tmp_path, port)


def test_evalsuite_run_the_demo_from_the_wheel(wheel_env, tmp_path):
    db = tmp_path / "store.duckdb"
    done = subprocess.run([str(wheel_env / "evalsuite"), "run", "--tasks", "lambada_openai", "--limit", "3",
                           "--db", str(db)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run([str(wheel_env / "evalsuite"), "ls", "--db", str(db), "--model", "pythia-demo"],
                            cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120).stdout
    assert "pythia-demo" in listed and "lambada_openai" in listed


def test_streamlit_run_from_the_repository_root_serves(tmp_path):
    port = _free_port()
    env = dict(os.environ, EVALSUITE_DB=str(store.init(tmp_path / "s.duckdb", seed=False)))
    _serve_and_check([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                      "--server.headless", "true"], ROOT, port, env)
