"""The one exception type evalsuite raises for bad input or an unusable environment.

The CLI prints its message as a single line (no traceback) and exits with status 2.
"""


def first_line(problem: object) -> str:
    """The first line of a library's error message (often many lines, or none): "" if it is empty."""
    lines = str(problem).strip().splitlines()
    return lines[0].strip() if lines else ""


class EvalsuiteError(Exception):
    """A problem the user can fix: the message says what is wrong and what is valid."""


class CheckpointError(EvalsuiteError):
    """One checkpoint cannot be loaded (no such revision, corrupt or mismatched files): a sweep
    reports it by name and goes on with the others. Problems that every checkpoint would hit
    (an unreachable Hub, offline mode) stay plain EvalsuiteErrors and stop the sweep."""


class Stopped(KeyboardInterrupt):
    """A sweep stopped by a signal (SIGTERM, SIGHUP): it ends as after a Ctrl-C, what it finished
    stored, and the CLI exits with `status` (128 + the signal's number)."""

    def __init__(self, signal_name: str, status: int):
        super().__init__(signal_name)
        self.signal_name, self.status = signal_name, status
