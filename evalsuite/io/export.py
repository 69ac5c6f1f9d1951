"""`evalsuite export`: stored scores as a JSON array, or as lm-eval-style results files.

The lm-eval format is lm-eval 0.4's results shape (`"acc,none"`, `"acc_stderr,none"`, `n-shot`,
`n-samples`, `config.model_args` with `pretrained=` and `revision=`), one file per (model, step)
and shot count, so `evalsuite import` and other lm-eval tooling read them back.

Both formats are strict JSON: a value that is not a finite number is written as null. File and
folder names come from stored names, so each name is checked (evalsuite.names) and each path is
checked to resolve inside --out before the first file is written.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from evalsuite import names, store
from evalsuite.catalog import pythia
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Score, columns

SCORE_FIELDS = columns(Score)  # every column of the scores table, in the schema's order


def score_rows(db: Path, models: list[str] | None = None, tasks: list[str] | None = None,
               source: str | None = None) -> list[dict]:
    """Stored scores as plain dicts (None for missing values), in a stable order."""
    where, params = store.scores_where(models, tasks, source)
    frame = store.read_df(db, f"SELECT {', '.join(SCORE_FIELDS)} FROM scores {where} "
                              "ORDER BY source, model, step NULLS FIRST, shots, task, metric", params)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value):
    """numpy/pandas scalars, NaN and infinities -> JSON-ready Python values (strict JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def lm_eval_documents(rows: list[dict]) -> dict[tuple, dict]:
    """Group score rows into one lm-eval 0.4 results document per (source, model, step, shots)."""
    docs: dict[tuple, dict] = {}
    for row in rows:
        key = (row["source"], row["model"], row["step"], row["shots"])
        doc = docs.setdefault(key, _empty_document(row))
        task = doc["results"].setdefault(row["task"], {"alias": row["task"]})
        task[f"{row['metric']},none"] = row["value"]
        task[f"{row['metric']}_stderr,none"] = row["stderr"] if row["stderr"] is not None else "N/A"
        doc["n-shot"][row["task"]] = row["shots"]
        if row["n"] is not None:
            doc["n-samples"][row["task"]] = {"effective": row["n"]}
    return docs


def _empty_document(row: dict) -> dict:
    model = pythia.MODELS.get(row["model"])
    args = f"pretrained={model.repo_id if model else row['model']}"
    if row["step"] is not None:
        args += f",revision={pythia.revision(row['step'])}"
    if row["dtype"]:
        args += f",dtype={row['dtype']}"
    return {"results": {}, "n-shot": {}, "n-samples": {},
            "config": {"model": "hf", "model_args": args, "num_fewshot": row["shots"],
                       "limit": row["doc_limit"]},
            "evalsuite": {"source": row["source"], "model": row["model"], "step": row["step"]}}


def write_lm_eval(rows: list[dict], out_dir: Path) -> list[Path]:
    """One file per document under out_dir/<model>/; every path is checked before any is written."""
    _check_names(rows)
    files = {}
    for (source, model, step, shots), doc in sorted(lm_eval_documents(rows).items(), key=str):
        step_part = "final" if step is None else f"step{step}"
        path = names.inside(out_dir, out_dir / model / f"results_{step_part}_{shots}shot_{source}.json")
        files[path] = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    for path, text in files.items():
        _write(path, text, mkdir=True)
    return list(files)


def _check_names(rows: list[dict]) -> None:
    # Rows written before names were checked at import may hold anything: refuse, do not guess.
    for row in rows:
        for kind in ("model", "source", "task", "metric", "dtype"):
            if row[kind] is not None and not names.is_valid(row[kind]):
                raise EvalsuiteError(f"the store holds a bad {kind} name {names.shown(row[kind])} "
                                     f"({names.RULE}); leave it out with --model/--task/--source")


def _write(path: Path, text: str, mkdir: bool = False) -> None:
    try:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise EvalsuiteError(f"cannot write {path}: {exc.strerror or exc}") from None


def export_from_args(args) -> None:
    models, tasks = names.check_list("model", args.model), names.check_list("task", args.task)
    source = names.check("source", args.source) if args.source is not None else None
    rows = score_rows(store.db_path(args.db), models, tasks, source)
    if not rows:
        raise EvalsuiteError("no stored scores match; see 'evalsuite ls'")
    if args.format == "lm-eval":
        if not args.out:
            raise EvalsuiteError("--format lm-eval needs --out DIR (one file per model and step)")
        files = write_lm_eval(rows, Path(args.out))
        print(f"wrote {len(files)} lm-eval results files ({len(rows)} scores) under {args.out}")
        return
    text = json.dumps(rows, indent=1, allow_nan=False) + "\n"
    if args.out:
        if Path(args.out).is_dir():
            raise EvalsuiteError(f"--out {args.out} is a folder; --format json writes one file "
                                 "(e.g. --out scores.json)")
        _write(Path(args.out), text)
        print(f"wrote {len(rows)} scores to {args.out}")
    else:
        sys.stdout.write(text)
