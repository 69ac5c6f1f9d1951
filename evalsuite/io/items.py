"""`evalsuite items`: which documents one model learns and forgets over its checkpoints, one row per
document (store/items.py computes them in DuckDB), as a table or JSON, on stdout or in a file.

The numbers are the dashboard's Items view's: the same query, the same run standing for each
checkpoint. Returns the text to print; the CLI prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evalsuite import names, store
from evalsuite.errors import EvalsuiteError
from evalsuite.io.export import plain_rows, write_text
from evalsuite.io.report import text_table
from evalsuite.store import items
from evalsuite.store.metrics import DERIVED

COLUMNS = ["doc_id", "steps", "learned_at", "flips", "final_correct", "final_margin"]


def columns(metric: str) -> list[str]:
    """COLUMNS, and a continuous metric's value at the last step (final_p_correct, final_bpb)."""
    return COLUMNS + [f"final_{metric}"] if metric in DERIVED else COLUMNS


def pick_source(db: Path, model: str, task: str, shots: int) -> str:
    """The one source holding samples of this model and task; an error naming the choice when
    there are several, or how to get samples when there are none."""
    sources = items.sample_sources(db, model, task, shots)
    if len(sources) == 1:
        return sources[0]
    if sources:
        raise EvalsuiteError(f"samples of {model} on {task} ({shots}-shot) come from several sources "
                             f"({', '.join(sources)}): pick one with --source")
    raise EvalsuiteError(
        f"no per-document samples of {model} on {task} ({shots}-shot) in {db}: published scores are "
        f"aggregates only. {run_hint(model, task)} stores them, and so does 'evalsuite import' of "
        "lm-eval output written with --log_samples")


def run_hint(model: str, task: str) -> str:
    """The `evalsuite run` command that evaluates `model`: by name where the catalog says where
    its checkpoints are, else with --model-path (a name alone would be an unknown model)."""
    from evalsuite.catalog.entries import load_catalog

    spec = load_catalog().get(model)
    where = "" if spec and (spec.repo or spec.path) else " --model-path DIR"
    return f"'evalsuite run --model {model}{where} --tasks {task}'"


def stats_rows(frame: pd.DataFrame, metric: str = "acc") -> list[dict]:
    """The statistics as plain JSON-ready dicts (null for a missing learned_at or margin)."""
    return plain_rows(frame[columns(metric)])


def summary(rows: list[dict], key: items.ItemsKey, mixed: int = 0) -> str:
    """One line: how many documents are right from some step to the last, wrong at the last,
    flipped; and a second where `mixed` doc_ids were scored on more than one text."""
    line = _counts(rows, key)
    if mixed:
        line += "\nwarning: " + mixed_texts_note(mixed)
    return line


def mixed_texts_note(mixed: int) -> str:
    """What the dashboard and the command say where doc_ids were scored on several texts."""
    return (f"{mixed} document(s) were scored on more than one text across these checkpoints (the task's "
            "data changed between runs); their learned_at and flips join the texts")


def _counts(rows: list[dict], key: items.ItemsKey) -> str:
    learned = sum(r["learned_at"] is not None for r in rows)
    wrong = sum(r["final_correct"] is False for r in rows)  # not len - learned: a released model learns nothing
    flipped = sum(r["flips"] > 0 for r in rows)
    line = (f"{len(rows)} documents of {key.task} ({key.shots}-shot, {key.metric}), {key.model} from source "
            f"{key.source}: {learned} learned for good ({learned / len(rows):.0%}), {wrong} "
            f"wrong at their last step; {flipped} changed at least once")
    if key.metric not in DERIVED:
        return line
    final = [r[f"final_{key.metric}"] for r in rows if r[f"final_{key.metric}"] is not None]
    return line + (f" (right and wrong by acc); mean {key.metric} at the last step "
                   f"{sum(final) / len(final):.4f}" if final else "")


def _table(rows: list[dict], metric: str) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    names = columns(metric)
    return text_table(pd.DataFrame([{c: cell(r[c]) for c in names} for r in rows], columns=names))


def items_from_args(args) -> str:
    """`evalsuite items`: the text to print (the table or JSON, or where it was written)."""
    model, task = names.check("model", args.model), names.check("task", args.task)
    if args.shots < 0:
        raise EvalsuiteError(f"bad --shots {args.shots}: shots are not negative")
    db = store.db_path(args.db)
    store.existing(db)
    source = names.check("source", args.source) if args.source else pick_source(db, model, task, args.shots)
    key = items.ItemsKey(model, task, args.shots, args.metric, source)
    stats = items.item_stats(db, key)
    rows = stats_rows(stats, args.metric)
    if not rows:
        raise EvalsuiteError(f"no per-document {args.metric} of {model} on {task} ({args.shots}-shot) "
                             f"from source {source} in {db}")
    text = (json.dumps(rows, indent=1, allow_nan=False) if args.format == "json"
            else _table(rows, args.metric) + "\n" + summary(rows, key, int(stats["mixed_texts"].sum()))) + "\n"
    if not args.out:
        return text.rstrip("\n")
    if Path(args.out).is_dir():
        raise EvalsuiteError(f"--out {args.out} is a folder; give a file (e.g. --out items.json)")
    write_text(Path(args.out), text)
    return f"wrote {len(rows)} documents to {args.out}"
