"""No process of a `--ray local` instance outlives the sweep that started it, however it ends.

`start(folder)` spawns `python -m evalsuite.sweep.reaper FOLDER` before Ray starts; FOLDER is the
instance's private temp dir (Ray's --temp-dir: its session, sockets, logs, spilled objects, the
workers' copies of the task data). The reaper waits for its stdin to close: when the sweep calls
`Reaper.finish()`, or when the sweep's process dies, even by SIGKILL or SIGHUP (the kernel closes
the pipe). Then it SIGKILLs every process of the instance and deletes FOLDER.

A process of the instance is one that (a) has FOLDER in its command line, its working directory
or any open file (every Ray process writes its logs there; the GCS server and the raylet are
started with the session's paths in their arguments), or (b) descends from such a process.
Never a process name, and not the
environment: Ray's setproctitle rewrites the DashboardAgent's and RuntimeEnvAgent's, so a marker
put there is invisible in them (issue 20).

Why: on Linux, Ray ties the GCS server and raylet to the driver (PR_SET_PDEATHSIG) but not the
agents each raylet starts; after a SIGKILLed driver they lingered for 20-70 s (Ray 2.60, measured
here). The reaper runs in its own session, so a Ctrl-C in the terminal does not reach it. Linux
only (/proc); elsewhere it just deletes the folder.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# a process gone meanwhile, or not ours to read
_ignored = functools.partial(contextlib.suppress, OSError, ValueError, IndexError)


class Reaper:
    def __init__(self, process: subprocess.Popen):
        self.process = process

    def finish(self, timeout_s: float = 30.0) -> None:
        """Let it clean up now and wait until it has."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass  # it goes on by itself; nothing here waits on it


def start(folder: Path) -> Reaper:
    process = subprocess.Popen([sys.executable, "-m", "evalsuite.sweep.reaper", str(folder)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
    return Reaper(process)


def _uses(pid: str, folder: str) -> bool:
    """Whether the process has `folder` in its command line, working directory or open files."""
    proc = Path("/proc") / pid
    try:
        if folder.encode() in (proc / "cmdline").read_bytes():
            return True
        if os.readlink(proc / "cwd").startswith(folder):
            return True
        for fd in (proc / "fd").iterdir():
            with _ignored():
                if os.readlink(fd).startswith(folder):
                    return True
    except OSError:  # gone meanwhile, or not ours to read
        return False
    return False


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process now."""
    parents = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            with _ignored():
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def instance(folder: Path, spare: int = -1) -> list[int]:
    """Pids of the instance's processes (never this one, nor `spare`: the sweep's own)."""
    parents, root = _parents(), str(folder)
    found = descendants({pid for pid in parents if _uses(str(pid), root)} - {spare}, parents)
    return sorted(found - {os.getpid(), spare})


def descendants(pids: set[int], parents: dict[int, int] | None = None) -> set[int]:
    """`pids` and every process below them."""
    parents = _parents() if parents is None else parents
    found, grew = set(pids), True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return found


def reap(folder: Path, sweep_pid: int, quiet_s: float = 3.0, limit_s: float = 120.0) -> None:
    """SIGKILL every process of the instance, and go on looking until none has been seen for
    `quiet_s`: a raylet may be forking an agent as it dies, and its child shows up after."""
    deadline, quiet_since = time.monotonic() + limit_s, time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
        pids = instance(folder, spare=sweep_pid)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if pids:
            quiet_since = time.monotonic()
        time.sleep(0.2)
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> None:
    folder, = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep's Ctrl-C is the sweep's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # and so is its terminal closing
    sweep_pid = os.getppid()  # spared: after finish() it is still running
    sys.stdin.buffer.read()  # returns when the sweep closes the pipe or dies
    reap(Path(folder), sweep_pid)


if __name__ == "__main__":
    main(sys.argv[1:])
