"""`--ray HOST:PORT`: the address checked, and the head behind it proved to be a Ray head before
ray.init() is called.

Why: ray.init() at a port where something else listens (a web server, a database, a socket that
accepts and says nothing) retries for ever, printing "Failed to connect to GCS", and a Ctrl-C does
not stop it (issue 20). So `check_head` first connects over TCP (nothing there: one line at once),
then asks the GCS for the cluster's id over gRPC with a deadline: a Ray head answers, or refuses
the call for want of its token, within a second; anything else is one line within PROBE_S. Every
wait here is a Python wait, so Ctrl-C stops it. IPv6 heads are written `[::1]:6379`.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from evalsuite.errors import EvalsuiteError

ADDRESS = re.compile(r"^(local|auto|[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5})$")
PROBE_S = 10.0  # for each of the TCP connection and the gRPC call: a Ray head answers in milliseconds
_CLUSTER_ID = "/ray.rpc.NodeInfoGcsService/GetClusterId"  # the first call ray.init() makes


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
    problem = _grpc_problem(head)
    if problem:
        raise EvalsuiteError(f"--ray {address}: something answers there, but not a Ray head ({problem}); "
                             "pass the address `ray start --head` prints (port 6379 by default)")


def _grpc_problem(head: HeadAddress) -> str | None:
    """None when the GCS answers the call (or refuses it for want of a token), else why not."""
    import grpc

    channel = grpc.insecure_channel(head.target)
    try:
        call = channel.unary_unary(_CLUSTER_ID)  # bytes in and out: the request's fields are all optional
        call.future(b"", timeout=PROBE_S).result()
    except grpc.RpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return None  # a Ray head with token authentication: ray.init() brings the token
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"no gRPC answer within {PROBE_S:.0f} s"
        return f"{code.name.lower()}: {(exc.details() or '')[:120]}".rstrip(": ")
    finally:
        channel.close()
    return None
