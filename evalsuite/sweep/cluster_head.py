"""`--ray HOST:PORT`: the address checked, and the head behind it proved to be a Ray head before
ray.init() is called.

Why: ray.init() at a port where something else listens (a web server, a database, a socket that
accepts and says nothing) retries for ever, printing "Failed to connect to GCS", and a Ctrl-C does
not stop it (issue 20). So `check_head` first connects over TCP (nothing there: one line at once),
then asks the GCS for a key through Ray's own client, in a child process given PROBE_S: a Ray
head answers within a second or two; anything else is one line. Every wait here is a Python
wait on a child, so Ctrl-C stops it. IPv6 heads are written `[::1]:6379`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass

from evalsuite.errors import EvalsuiteError

ADDRESS = re.compile(r"^(local|auto|[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5})$")
PROBE_S = 15.0  # for each of the TCP connection and the GCS call: a Ray head answers in a second or two


@dataclass(frozen=True)
class HeadAddress:
    host: str  # without brackets
    port: int

    @property
    def target(self) -> str:
        """As gRPC and Ray write it (an IPv6 host in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse(address: str) -> HeadAddress:
    host, port = address.rsplit(":", 1)
    if not 0 < int(port) < 65536:
        raise EvalsuiteError(f"--ray {address}: the port must be 1 to 65535")
    return HeadAddress(host.removeprefix("[").removesuffix("]"), int(port))


def check_head(address: str) -> None:
    """A one-line EvalsuiteError unless a Ray head answers at HOST:PORT (`auto` is Ray's to find)."""
    if address == "auto":
        return  # Ray finds the local node's head itself, or says it found none, at once
    head = parse(address)
    try:
        socket.create_connection((head.host, head.port), timeout=PROBE_S).close()
    except OSError as exc:
        raise EvalsuiteError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); start the "
                             "head with `ray start --head` and pass the address it prints") from None
    problem = _ray_problem(head)
    if problem:
        raise EvalsuiteError(f"--ray {address}: something answers there, but not a Ray head ({problem}); "
                             "pass the address `ray start --head` prints (port 6379 by default)")


def _ray_problem(head: HeadAddress) -> str | None:
    """None when a Ray GCS answers at `head`, else why not. Asked by Ray's own GCS client in a
    child process that is killed after PROBE_S: in this process, it would retry for a minute
    with Ctrl-C ignored."""
    probe = subprocess.Popen([sys.executable, "-c", _PROBE, head.target], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # a Ctrl-C is this process's to handle
    try:
        _, err = probe.communicate(timeout=PROBE_S)
    except subprocess.TimeoutExpired:
        return f"no answer from a Ray GCS within {PROBE_S:.0f} s"
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in err.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"the probe exited with status {probe.returncode}"


_PROBE = """
import sys
from ray._raylet import GcsClient
GcsClient(address=sys.argv[1]).internal_kv_get(b"evalsuite-probe", None)
"""
