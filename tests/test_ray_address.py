"""`--ray HOST:PORT` where something listens that is not a Ray head: one line within 30 s (before,
ray.init() retried for ever and ignored Ctrl-C), and Ctrl-C stops it while it connects. IPv6
heads are written [::1]:PORT. The servers are real sockets on free loopback ports: one that
accepts and says nothing, one that answers as a web server does."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import cli_env, evalsuite_cmd


class FakeServer:
    """Accepts TCP connections on a free loopback port and answers each with `reply` (nothing:
    b""), keeping them open; `accepted` counts them."""

    def __init__(self, family: socket.AddressFamily, reply: bytes):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.listen()
        self.reply, self.accepted, self.open = reply, 0, []
        host, port = self.sock.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self.open.append(conn)
            if self.reply:
                conn.sendall(self.reply)

    def close(self) -> None:
        for conn in [*self.open, self.sock]:
            conn.close()


def _run(address: str, tmp_path, hf_home) -> subprocess.Popen:
    return subprocess.Popen(evalsuite_cmd("run", "--model", "pythia-70m", "--steps", "1000", "--device", "cpu",
                                          "--ray", address),
                            env=cli_env(hf_home, tmp_path / "s.duckdb"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("family, reply", [
    (socket.AF_INET, b""),  # accepts and says nothing
    (socket.AF_INET6, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),  # a web server, over IPv6
])
def test_a_port_that_is_not_a_ray_head_is_one_line_within_30_s(tmp_path, hf_home, family, reply):
    server = FakeServer(family, reply)
    started = time.monotonic()
    proc = _run(server.address, tmp_path, hf_home)
    try:
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        proc.kill()  # a command that hangs (as before issue 20) must not outlive the test
        server.close()
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"evalsuite: error: --ray {server.address}: something answers there, "
                               "but not a Ray head"), lines
    assert took < 30 and server.accepted >= 2  # the TCP check, then the gRPC call


def test_ctrl_c_while_connecting(tmp_path, hf_home):
    server = FakeServer(socket.AF_INET, b"")
    proc = _run(server.address, tmp_path, hf_home)
    try:
        deadline = time.monotonic() + 60
        while server.accepted < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the second connection: the gRPC call, waiting for an answer
        assert server.accepted >= 2, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
        server.close()
    assert proc.returncode == 130 and err.strip().splitlines() == [
        "evalsuite: interrupted; finished checkpoints are stored"], err[-3000:]
