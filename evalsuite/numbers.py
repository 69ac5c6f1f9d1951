"""Every number the command line takes, checked where it enters: argparse `type=` parsers that
give a whole number within the range it will be stored in (store/schema.py: INTEGER is 32 bits,
BIGINT 64) or used as (a port, lm-eval's few-shot count), or one EvalsuiteError line (exit 2)
before any work starts, instead of a library's traceback after a checkpoint was evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from evalsuite.errors import EvalsuiteError

INT32_MAX = 2**31 - 1  # DuckDB INTEGER: steps, shots, --limit (doc_limit), n
INT64_MAX = 2**63 - 1  # DuckDB BIGINT: tokens seen
MAX_SHOTS = 1_000  # more examples than any task's few-shot split (or context) holds


def whole(option: str, low: int, high: int, what: str) -> Callable[[str], int]:
    """A parser for `option`: a whole number from `low` to `high` (`what` says what it counts)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise EvalsuiteError(f"bad {option} {text!r}: a whole number ({what})") from None
        if not low <= value <= high:
            raise EvalsuiteError(f"bad {option} {text}: {what}, from {low} to {high:,}")
        return value

    parse.__name__ = option  # argparse names the type in its own messages
    return parse


def positive(option: str, what: str, most: float | None = None) -> Callable[[str], float]:
    """A parser for `option`: a number above 0, never NaN; at most `most` where given (a wait, not
    a sleep for ever), else any (inf: no limit)."""
    bound = f", at most {most:,.0f}" if most is not None else ""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise EvalsuiteError(f"bad {option} {text!r}: give {what} above 0") from None
        if math.isnan(value) or value <= 0 or (most is not None and value > most):
            raise EvalsuiteError(f"bad {option} {value}: give {what} above 0{bound}")
        return value

    parse.__name__ = option
    return parse


def batch_size(text: str) -> str:
    """--batch-size: auto, auto:N (lm-eval's: recompute N times) or a whole number from 1."""
    value = text.strip()
    head, _, tail = value.partition(":")
    if value == "auto" or (head == "auto" and tail.isdigit() and 1 <= int(tail) <= INT32_MAX):
        return value
    if value.isdigit() and 1 <= int(value) <= INT32_MAX:
        return str(int(value))
    raise EvalsuiteError(f"bad --batch-size {text!r}: auto, auto:N or a whole number from 1 to {INT32_MAX:,}")


SHOTS = whole("--shots", 0, MAX_SHOTS, "few-shot examples")
LIMIT = whole("--limit", 1, INT32_MAX, "documents per task")
STEP = whole("--step", 0, INT32_MAX, "a checkpoint's training step")
TOKENS_PER_STEP = whole("--tokens-per-step", 1, INT64_MAX, "tokens one training step consumed")
PORT = whole("--port", 1, 65535, "a TCP port")
LAST = whole("--last", 2, INT32_MAX, "checkpoints a model's noise is measured over")
MAX_FILE = positive("--max-file-mb", "a size in MB")
WORKERS = whole("--workers", 1, 100_000, "Ray workers")
UNTIL = whole("--until", 0, INT32_MAX, "a checkpoint's training step")
INTERVAL = positive("--interval", "seconds", most=86_400)
