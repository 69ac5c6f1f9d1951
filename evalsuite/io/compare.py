"""`evalsuite compare A B`: two checkpoints compared task by task on the documents both scored
(stats/paired.py), as a table or JSON. A and B are MODEL@STEP, or MODEL for its last stored
checkpoint. Returns the text to print; the CLI prints it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from evalsuite import names, store
from evalsuite.errors import EvalsuiteError
from evalsuite.io.export import plain_rows
from evalsuite.io.report import text_table
from evalsuite.stats.paired import COLUMNS, compare, last_checkpoint, pick_source
from evalsuite.store.values import Checkpoint

SIDE = re.compile(r"(?P<model>[^@]+)(@(?P<step>\d{1,9}))?")


def checkpoint(db: Path, text: str, source: str | None, shots: int) -> Checkpoint:
    """MODEL@STEP or MODEL (its last stored checkpoint from the source) as a Checkpoint; the
    source, when not named, the one pick_source finds."""
    match = SIDE.fullmatch(text)
    if not match:
        raise EvalsuiteError(f"bad checkpoint {names.shown(text)}: MODEL@STEP (e.g. pythia-160m@143000) or MODEL")
    model = names.check("model", match["model"])
    step = int(match["step"]) if match["step"] else None
    if source is None:
        source = pick_source(db, model, shots, step, every_step=step is None)
    source = names.check("source", source)
    if step is None:
        step = last_checkpoint(db, model, source, shots)
    return Checkpoint(model, step, source)


def shown(point: Checkpoint) -> str:
    return point.model + ("" if point.step is None else f"@{point.step}") + f" ({point.source})"


def table(frame: pd.DataFrame) -> str:
    """The comparison as a fixed-width table: '-' where a count does not apply, p-values to
    three significant digits."""
    def cell(column: str, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if column == "p_value":
            return f"{value:.3g}"
        return f"{value:+.4f}" if column in ("diff", "ci_low", "ci_high") else str(value)

    rows = [{c: cell(c, r[c]) for c in COLUMNS} for r in plain_rows(frame)]
    return text_table(pd.DataFrame(rows, columns=COLUMNS))


def compare_from_args(args) -> str:
    """`evalsuite compare`: the text to print."""
    if args.shots < 0:
        raise EvalsuiteError(f"bad --shots {args.shots}: shots are not negative")
    if args.source and (args.source_a or args.source_b):
        raise EvalsuiteError("--source names both sides' source; --source-a / --source-b name one each")
    db = store.readable(args.db)
    tasks = names.check_list("task", args.task)
    a = checkpoint(db, args.a, args.source or args.source_a, args.shots)
    b = checkpoint(db, args.b, args.source or args.source_b, args.shots)
    frame = compare(db, a, b, args.metric, args.shots, tasks)
    if frame.empty:
        raise EvalsuiteError(f"nothing to compare: {shown(a)} and {shown(b)} share no task with {args.metric} "
                             f"({args.shots}-shot) in samples or stored scores; see 'evalsuite ls'")
    if args.format == "json":
        return json.dumps(plain_rows(frame), indent=1, allow_nan=False)
    return (f"A = {shown(a)}, B = {shown(b)}: {args.metric}, {args.shots}-shot; diff is B minus A, with its "
            f"95% interval\n{table(frame)}")
