"""An optional dependency that is not installed is one line naming the install command, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Runs the real CLI in a process where `ray` cannot be found, as on an install without the extra.
WITHOUT_RAY = textwrap.dedent("""
    import sys

    class NoRay:
        def find_spec(self, name, path=None, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ModuleNotFoundError("No module named 'ray'", name="ray")
            return None

    sys.meta_path.insert(0, NoRay())
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
