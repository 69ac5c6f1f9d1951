"""An optional dependency that is not installed is one line naming the install command, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# Makes one package unfindable, as on an install without the extra that brings it.
BLOCKER = textwrap.dedent("""
    import sys

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == MISSING:
                raise ModuleNotFoundError(f"No module named {MISSING!r}", name=MISSING)
            return None

    sys.meta_path.insert(0, Missing())
""")
# Runs the real CLI in a process where `ray` cannot be found.
WITHOUT_RAY = "MISSING = 'ray'\n" + BLOCKER + textwrap.dedent("""
    from evalsuite.cli import main
    sys.argv = ["evalsuite", *sys.argv[1:]]
    sys.exit(main())
""")


def _run_without_ray(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_RAY, *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_ray_without_ray_installed_names_the_install_command(tmp_path):
    done = _run_without_ray("run", "--ray", "local", "--db", str(tmp_path / "s.duckdb"), tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'evalsuite[ray]'" in lines[0]
    assert not (tmp_path / "s.duckdb").exists()  # refused before anything was started or written


def test_without_ray_a_run_without_ray_still_parses(tmp_path):
    """The check is for --ray only: a bad option elsewhere still gets its own message."""
    done = _run_without_ray("run", "--workers", "2", tmp_path=tmp_path)
    assert done.returncode == 2 and "--workers needs --ray" in done.stderr


def test_the_items_benchmark_without_playwright_says_so_before_building(tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("bench_items times the dashboard only where chromium is installed")
    script = "MISSING = 'playwright'\n" + BLOCKER + (
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        f"sys.argv = ['bench_items.py', '--db', {str(tmp_path / 'b.duckdb')!r}]\n"
        f"import runpy; runpy.run_path({str(BENCHMARKS / 'bench_items.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == "bench_items: timing the dashboard needs playwright: pip install 'evalsuite[test]'"
    assert not (tmp_path / "b.duckdb").exists()
