"""What a Ray sweep's driver does about signals and about the messages Ray prints on its own.

- `stopped_by_signals`: SIGTERM and SIGHUP stop the sweep as Ctrl-C does (workers stopped, the
  sweep marked stopped, the instance torn down, one line from the CLI). Ray's own handler calls
  sys.exit() from wherever the main thread is, and the driver then ends in Ray's stack dump and
  SIGABRT (issue 20).
- `ray_errors_to`: Ray's driver prints each error the cluster publishes (a worker's death is a
  paragraph) on stdout, where it lands inside the sweep's summary. Here each goes to a callback
  as its first line (the CLI writes it on stderr); the sweep says one line of its own per lost
  worker.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

from evalsuite.errors import Stopped


@contextlib.contextmanager
def stopped_by_signals():
    """Within: SIGTERM and SIGHUP raise Stopped in the main thread (installed after ray.init(),
    which installs its own). Ray's blocking calls turn any exception a handler raises into a
    KeyboardInterrupt of their own: the signal received is remembered and said as it was."""
    received: list[Stopped] = []

    def stop(signum, _frame) -> None:
        received.append(Stopped(signal.Signals(signum).name, 128 + signum))
        raise received[-1]

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except KeyboardInterrupt as exc:
        if received and not isinstance(exc, Stopped):
            raise received[0] from None
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ray_errors_to(warn: Callable[[str], None]):
    """Within (ray.init() included: it starts the thread that prints them): the raylet's errors
    published to the driver go to `warn`, one line each; other processes' output goes to Ray's
    own printer, marked as errors (stderr)."""
    from ray._private import worker

    original = worker.print_to_stdstream

    def first_line_on_stderr(data, ignore_prefix: bool) -> None:
        lines = [line.strip() for line in data.get("lines", []) if line.strip()]
        if data.get("pid") == "raylet" and lines:
            warn(f"ray: {lines[0][:300]}")
        elif lines:
            original({**data, "is_err": True}, ignore_prefix)

    worker.print_to_stdstream = first_line_on_stderr
    try:
        yield
    finally:
        worker.print_to_stdstream = original
