"""What a name may be, and where a written file may go: the rules every edge of evalsuite applies.

Models, tasks, sources, metrics and dtypes end up in SQL rows, in file and folder names written
by `evalsuite export`, in lm-eval's `model_args` (`pretrained=...,dtype=...`) and on screen. They
come from result files, command-line flags, links and tasks.yaml, none of which is trusted, so
each one is checked here when it enters: letters, digits, '.', '-' and '_', starting with a
letter or digit, at most 100 characters, no '..'. That rules out path separators, '..',
control characters, commas, '=' and markdown. Paths built from names are checked once more
(`inside`) before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from evalsuite.errors import EvalsuiteError

MAX_LENGTH = 100
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RULE = (f"use letters, digits, '.', '-' and '_', starting with a letter or digit, no '..', "
        f"at most {MAX_LENGTH} characters")


class BadName(EvalsuiteError):
    """A model, task, source, metric or dtype name that breaks the rule above."""


def is_valid(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= MAX_LENGTH and PATTERN.fullmatch(value) is not None
            and ".." not in value)


def check(kind: str, value: object) -> str:
    """`value` if it is a valid `kind` name ('model', 'source', ...), else BadName saying why."""
    if not isinstance(value, str) or not is_valid(value):
        raise BadName(f"bad {kind} name {shown(value)}: {RULE}")
    return value


def check_list(kind: str, text: str | None) -> list[str] | None:
    """A comma list from a flag (`--model a,b`), every name checked; None when not given."""
    if text is None:
        return None
    return [check(kind, part.strip()) for part in text.split(",") if part.strip()] or None


def shown(value: object, limit: int = 60) -> str:
    """A value quoted for a one-line message: control characters escaped, long values cut."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def printable(text: object) -> str:
    """Text for a terminal: every non-printable character (ESC, NUL, newline, bidi controls) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def inside(root: Path, path: Path) -> Path:
    """`path`, after checking it resolves (symlinks followed) inside `root`; EvalsuiteError if not."""
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        raise EvalsuiteError(f"refusing to write {path}: it resolves to {resolved}, outside {root}")
    return path
