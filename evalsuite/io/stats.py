"""`evalsuite stats`: noise, signal and their ratio per family, task, metric and shot count
(stats/signal.py), as a table or JSON. Returns the text to print; the CLI prints it."""

from __future__ import annotations

import json

import pandas as pd

from evalsuite import names, store
from evalsuite.errors import EvalsuiteError
from evalsuite.io.export import plain_rows
from evalsuite.io.report import text_table
from evalsuite.stats.signal import COLUMNS, METRICS, family_scores, signal_noise


def table(frame: pd.DataFrame) -> str:
    """Signal and noise to three significant digits, snr to one decimal; '-' where undefined
    (one model: no signal; one checkpoint: no noise)."""
    def cell(column: str, value) -> str:
        if value is None:
            return "-"
        if column == "snr":
            return f"{value:.1f}"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return text_table(pd.DataFrame([{c: cell(c, r[c]) for c in COLUMNS} for r in plain_rows(frame)],
                                   columns=COLUMNS))


def stats_from_args(args) -> str:
    """`evalsuite stats`: the text to print."""
    if args.last < 2:
        raise EvalsuiteError(f"bad --last {args.last}: noise needs at least 2 checkpoints")
    if args.shots is not None and args.shots < 0:
        raise EvalsuiteError(f"bad --shots {args.shots}: shots are not negative")
    family = names.check("family", args.family) if args.family else None
    source = names.check("source", args.source) if args.source else None
    metrics = [args.metric] if args.metric else list(METRICS)
    scores = family_scores(store.readable(args.db), metrics, family, names.check_list("task", args.task), source,
                           args.shots, args.last)
    frame = signal_noise(scores, args.last)
    if frame.empty:
        raise EvalsuiteError("no stored scores match; see 'evalsuite ls'")
    if args.format == "json":
        return json.dumps(plain_rows(frame), indent=1, allow_nan=False)
    return (f"{table(frame)}\nsignal: (max - min) / mean of a family's scores at the step; noise: std / mean of "
            f"each model's last {args.last} checkpoints, averaged over the family; snr = signal / noise "
            "(Heineman et al. 2025)")
