"""`evalsuite dashboard`: start the Streamlit app (app.py beside this file) on the store, bound to localhost.

The store path reaches the app through $EVALSUITE_DB; the app itself only ever reads it. The
process becomes the Streamlit server (exec), so Ctrl-C or a signal to this pid stops the server
itself and leaves no orphan behind.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.store import db_path

APP = Path(__file__).resolve().parent / "app.py"
# Streamlit runs a full garbage collection after every script run by default: with the store's
# cached frames in memory that took about a third of each page's script time at full scale, and
# held every thread (the page's messages too) meanwhile; Python's own collector still runs. The
# app uses no "magic" (bare expressions drawn), so its source needs no rewriting either. Nor is
# it edited while it serves: Streamlit's file watcher walked every imported module's path after
# each script run, on the thread that sends the page to the browser (~0.3 s of each opening).
RUNNER = ["--runner.postScriptGC", "false", "--runner.magicEnabled", "false", "--server.fileWatcherType", "none"]


def command(host: str, port: int, app: Path = APP) -> list[str]:
    """The server's command line (`app`: another Streamlit script served the same way, as
    benchmarks/bench_items.py serves its floor page)."""
    return [sys.executable, "-m", "dashboard.serve", "run", str(app), "--server.address", host,
            "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", *RUNNER]


def _check_port(host: str, port: int) -> None:
    # Streamlit would otherwise pick another port silently or fail with a long traceback.
    # The address family is the host's own: ::1 needs an IPv6 socket.
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise EvalsuiteError(f"cannot listen on {host!r}: not an address of this machine "
                             f"({getattr(exc, 'strerror', None) or exc})") from None
    with socket.socket(family, kind, proto) as sock:
        # as the server binds (tornado sets it): a port held only by the closed connections of a
        # dashboard stopped a moment ago (TIME_WAIT, up to a minute) is free; a listener is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise EvalsuiteError(f"cannot listen on {_url_host(host)}:{port} ({exc.strerror}); "
                                 "is a dashboard already running? pick another with --port") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def launch(db: str | None = None, host: str = "127.0.0.1", port: int = 8501,
           say: Callable[[str], None] = lambda line: None,
           warn: Callable[[str], None] = lambda line: None) -> None:
    """Replace this process with the Streamlit server; returns only if that cannot start.
    `say` hears the address, `warn` a warning when it is reachable from other machines."""
    if not APP.is_file():
        raise EvalsuiteError(f"dashboard app not found at {APP}")
    path = db_path(db).resolve()
    _check_port(host, port)
    env = dict(os.environ, EVALSUITE_DB=str(path))
    shown = "localhost" if host in ("127.0.0.1", "localhost") else _url_host(host)
    say(f"evalsuite dashboard: http://{shown}:{port}  (store {path}; Ctrl-C stops it)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"warning: listening on {host}: anyone who can reach this machine can read the store")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, command(host, port), env)
    except OSError as exc:
        raise EvalsuiteError(f"cannot start streamlit: {exc.strerror}") from None
