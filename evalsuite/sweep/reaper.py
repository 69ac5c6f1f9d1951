"""No process of a `--ray local` instance outlives the sweep that started it, however it ends.

`start(marker, folder)` spawns `python -m evalsuite.sweep.reaper MARKER FOLDER` before Ray starts; the
sweep then puts EVALSUITE_RAY_INSTANCE=MARKER into its environment, so every Ray process it starts
(and every process those start) inherits it. The reaper waits for its stdin to close: when the
sweep calls `Reaper.finish()`, or when the sweep's process dies, even by SIGKILL (the kernel closes
the pipe). Then it kills every process whose environment holds the marker and deletes FOLDER (the
instance's temp dir: sockets, logs, spilled objects, the workers' copies of the task data).

Why: on Linux, Ray ties the GCS server and raylet to the driver (PR_SET_PDEATHSIG) but not the
agents each raylet starts; after a SIGKILLed driver they lingered for 20-70 s (Ray 2.60, measured
here). The reaper runs in its own session, so a Ctrl-C in the terminal does not reach it. Linux
only (/proc); elsewhere it just deletes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MARKER_VAR = "EVALSUITE_RAY_INSTANCE"


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


def start(marker: str, folder: Path) -> Reaper:
    env = {k: v for k, v in os.environ.items() if k != MARKER_VAR}  # it must not kill itself
    process = subprocess.Popen([sys.executable, "-m", "evalsuite.sweep.reaper", marker, str(folder)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    return Reaper(process)


def marked(marker: str, spare: tuple[int, ...] = ()) -> list[int]:
    """Pids of the processes (but this one and `spare`) whose environment holds the marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit() and int(entry.name) not in (os.getpid(), *spare):
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return pids


def reap(marker: str, folder: Path, sweep_pid: int, quiet_s: float = 5.0, limit_s: float = 120.0) -> None:
    """SIGKILL every marked process but the sweep's own, and go on looking until none has been
    seen for `quiet_s`: a raylet may be forking an agent as it dies, and on a busy machine that
    child shows up seconds later (seen: a DashboardAgent, 30 s after a SIGKILLed driver)."""
    deadline, quiet_since = time.monotonic() + limit_s, time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
        pids = marked(marker, spare=(sweep_pid,))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if pids:
            quiet_since = time.monotonic()
        time.sleep(0.2)
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> None:
    marker, folder = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep's Ctrl-C is the sweep's
    sweep_pid = os.getppid()  # spared: after finish() it is still running
    sys.stdin.buffer.read()  # returns when the sweep closes the pipe or dies
    reap(marker, Path(folder), sweep_pid)


if __name__ == "__main__":
    main(sys.argv[1:])
