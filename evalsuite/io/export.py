"""`evalsuite export`: stored scores as a JSON array, or as lm-eval-style results files; stored
samples (one row per document per checkpoint) as JSON Lines or Parquet.

The lm-eval format is lm-eval 0.4's results shape (`"acc,none"`, `"acc_stderr,none"`, `n-shot`,
`n-samples`, `config.model_args` with `pretrained=` and `revision=`), one file per (model, step)
and run setting (shots, limit, dtype), with an `evalsuite` block naming the rows' source, model,
step and tokens, so `evalsuite import` gives back every row and other lm-eval tooling reads them.

Every JSON written is strict: a value that is not a finite number is written as null. File and
folder names come from stored names, so each name is checked (evalsuite.names) and each path is
checked to resolve inside --out before the first file is written. The samples file is written by
DuckDB straight from the store (28.7 million rows at full scale never pass through Python), one
(model, task) at a time in short read connections, joined into a temporary file beside --out and
renamed into place once complete. Every file is written that way (io/atomic.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd

from evalsuite import names, store
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.errors import EvalsuiteError
from evalsuite.io import atomic
from evalsuite.records import Score, columns
from evalsuite.store import metrics, stand_ins

SCORE_FIELDS = columns(Score)  # every column of the scores table, in the schema's order
# One row per stored sample: its checkpoint, the document, the outcome; the source from its run.
SAMPLE_FIELDS = ["r.source", "s.run_id", "s.model", "s.step", "s.task", "s.shots", "s.doc_id", "s.target",
                 "s.correct", "s.correct_norm"]
SAMPLE_FORMATS = {".jsonl": "FORMAT json", ".parquet": "FORMAT parquet"}  # by --out's extension
SORT_MEMORY = "1GB"  # DuckDB's memory while it sorts the samples file; the rest spills to disk


def score_rows(db: Path, models: list[str] | None = None, tasks: list[str] | None = None,
               source: str | None = None) -> list[dict]:
    """Stored scores as plain dicts (None for missing values), in a stable order."""
    where, params = store.scores_where(models, tasks, source)
    frame = store.read_df(db, f"SELECT {', '.join(SCORE_FIELDS)} FROM scores {where} "
                              "ORDER BY source, model, step NULLS FIRST, shots, task, metric", params)
    return plain_rows(frame)


def plain_rows(frame) -> list[dict]:
    """A frame's rows as JSON-ready dicts (strict JSON: None for a missing or non-finite value)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value):
    """numpy/pandas scalars, NaN and infinities -> JSON-ready Python values (strict JSON has no NaN)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# What one exported file holds: the rows of one run setting (a --limit trial and the full set, or
# two dtypes, of one checkpoint are two files, so that importing them gives back every row)
DOCUMENT_KEY = ("source", "model", "step", "shots", "doc_limit", "dtype")


def lm_eval_documents(rows: list[dict]) -> dict[tuple, dict]:
    """Group score rows into one lm-eval 0.4 results document per DOCUMENT_KEY."""
    docs: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in DOCUMENT_KEY)
        doc = docs.setdefault(key, _empty_document(row))
        task = doc["results"].setdefault(row["task"], {"alias": row["task"]})
        task[f"{row['metric']},none"] = row["value"]
        task[f"{row['metric']}_stderr,none"] = row["stderr"] if row["stderr"] is not None else "N/A"
        doc["n-shot"][row["task"]] = row["shots"]
        if row["n"] is not None:
            doc["n-samples"][row["task"]] = {"effective": row["n"]}
    return docs


def _empty_document(row: dict) -> dict:
    spec = builtin_catalog().get(row["model"])
    args = f"pretrained={spec.repo if spec and spec.repo else row['model']}"
    step = row["step"]
    if step is not None:  # the revision as the entry names it (step{step} where it cannot say)
        revision = spec.pattern.name_for(step) if spec and spec.pattern else None
        args += f",revision={revision or f'step{step}'}"
    if row["dtype"]:
        args += f",dtype={row['dtype']}"
    return {"results": {}, "n-shot": {}, "n-samples": {},
            "config": {"model": "hf", "model_args": args, "num_fewshot": row["shots"],
                       "limit": row["doc_limit"]},
            "evalsuite": {"source": row["source"], "model": row["model"], "step": row["step"],
                          "tokens": row["tokens"]}}


def write_lm_eval(rows: list[dict], out_dir: Path) -> list[Path]:
    """One file per document under out_dir/<model>/; every path is checked before any is written."""
    _check_names(rows)
    files = {}
    for (source, model, step, shots, limit, dtype), doc in sorted(lm_eval_documents(rows).items(), key=str):
        setting = "final" if step is None else f"step{step}"
        setting += f"_{shots}shot_{source}" + (f"_limit{limit}" if limit is not None else "")
        setting += f"_{dtype}" if dtype else ""
        path = names.inside(out_dir, out_dir / model / f"results_{setting}.json")
        files[path] = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    for path, text in files.items():
        write_text(path, text, mkdir=True)
    return list(files)


def _check_names(rows: list[dict]) -> None:
    # Rows written before names were checked at import may hold anything: refuse, do not guess.
    for row in rows:
        for kind in ("model", "source", "task", "metric", "dtype"):
            if row[kind] is not None and not names.is_valid(row[kind]):
                raise EvalsuiteError(f"the store holds a bad {kind} name {names.shown(row[kind])} "
                                     f"({names.RULE}); leave it out with --model/--task/--source")


def write_text(path: Path, text: str, mkdir: bool = False) -> None:
    """`text` into `path`, whole or not at all (io/atomic.py)."""
    atomic.write_text(path, text, mkdir=mkdir)


def samples_file(out: Path) -> tuple[Path, str]:
    """--out for the samples format, checked: (the path, DuckDB's COPY format for its extension)."""
    kind = SAMPLE_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise EvalsuiteError(f"--out {out}: --format samples writes .jsonl or .parquet (by the extension)")
    if out.is_dir():
        raise EvalsuiteError(f"--out {out} is a folder; --format samples writes one file (e.g. --out samples.parquet)")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise EvalsuiteError(f"cannot write {out}: {out.parent} is not a writable folder")
    return names.inside(out.parent, out), kind


def write_samples(db: Path, out: Path, models: list[str] | None = None, tasks: list[str] | None = None,
                  source: str | None = None, derived: bool = False) -> int:
    """Every stored sample matching the filters into one file (JSON Lines or Parquet, by the
    extension); returns the rows written. Nothing is written when no sample matches. `derived`
    adds each sample's p_correct and bpb (store/metrics.py; null where not finite).

    The store is read one (model, task) at a time, each in its own short read connection, so a
    sweep writing the store waits seconds, not the whole export (store/db.py); the pieces go to a
    folder beside --out and are joined into a temporary file renamed into place once complete."""
    out, kind = samples_file(out)
    where, params = store.scores_where(models, tasks, source, rows="s.", runs="r.")
    finite = "list_transform(s.loglikelihoods, lambda x: CASE WHEN isfinite(x) THEN x END) AS loglikelihoods"
    extra, join = (metrics.derived_columns() if derived else ("", ""))
    in_chunk = (f"{where} AND" if where else "WHERE") + " s.model = ? AND s.task = ?"
    query = (f"SELECT {', '.join(SAMPLE_FIELDS)}, {finite}{extra} FROM SAMPLES s LEFT JOIN runs r USING (run_id) "
             f"{join} {in_chunk} ORDER BY s.model, s.task, s.shots, r.source, s.step, s.run_id, s.doc_id")
    with atomic.scratch_folder(out, "pieces") as pieces, atomic.scratch_folder(out, "spill") as spill:
        try:
            pieces.mkdir()
            written = [_copy_piece(db, query, params, chunk, pieces / f"{i:06d}", kind, spill, out)
                       for i, chunk in enumerate(_chunks(db, where, params))]
            rows = sum(n for _, n in written)
            if rows:
                with atomic.replacing(out, "wb") as f:
                    _join([p for p, n in written if n], kind, f)
        except OSError as exc:
            raise EvalsuiteError(atomic.cannot_write(out, exc)) from None
    return rows


def _chunks(db: Path, where: str, params: list) -> list[tuple[str, str]]:
    """The (model, task) pairs with matching samples, in the file's order."""
    frame = store.read_df(db, f"SELECT DISTINCT s.model, s.task FROM samples s LEFT JOIN runs r USING (run_id) "
                              f"{where} ORDER BY s.model, s.task", params)
    return list(zip(frame.model, frame.task))


def _copy_piece(db: Path, query: str, params: list, chunk: tuple[str, str], piece: Path, kind: str,
                spill: Path, out: Path) -> tuple[Path, int]:
    """One (model, task)'s samples into `piece`, in a read connection of its own."""
    import duckdb

    with store.connect(db, read_only=True) as con:
        # Sorting a full suite's 28.7M rows took 6.6 GiB in memory; capped, DuckDB spills to disk
        # beside --out in about the same time (benchmarks/bench_items.py)
        con.execute(f"SET memory_limit = '{SORT_MEMORY}'")
        con.execute(f"SET temp_directory = {store.sql_path(spill)}")
        try:
            (rows,), = con.execute(f"COPY ({stand_ins.fill(con, query)}) TO {store.sql_path(piece)} ({kind})",
                                   [*params, *chunk]).fetchall()
        except (duckdb.Error, RuntimeError) as exc:
            if "interrupted" in str(exc).lower():  # DuckDB's word for the Ctrl-C (or SIGTERM) it caught
                raise KeyboardInterrupt from None
            if "No space left" in str(exc):  # writing the piece or spilling: --out's disk, not the store
                raise EvalsuiteError(f"cannot write {out}: no space left on {atomic.disk_of(out)}") from None
            raise
    return piece, rows


def _join(pieces: list[Path], kind: str, f) -> None:
    """The pieces, in order, as one file: JSON Lines end to end; Parquet row group by row group."""
    if kind == SAMPLE_FORMATS[".jsonl"]:
        for piece in pieces:
            with open(piece, "rb") as part:
                shutil.copyfileobj(part, f, 1 << 20)
            piece.unlink()
        return
    import pyarrow.parquet as pq

    writer = None
    for piece in pieces:
        source = pq.ParquetFile(piece)
        writer = writer or pq.ParquetWriter(f, source.schema_arrow)
        for group in range(source.num_row_groups):
            writer.write_table(source.read_row_group(group))
        piece.unlink()
    if writer is not None:
        writer.close()


def export_from_args(args) -> str:
    """`evalsuite export`: write what was asked for; return what the command prints on stdout
    (a line saying what was written, or the JSON itself when there is no --out)."""
    models, tasks = names.check_list("model", args.model), names.check_list("task", args.task)
    source = names.check("source", args.source) if args.source is not None else None
    if args.format == "samples":
        return _export_samples(args, models, tasks, source)
    rows = score_rows(store.db_path(args.db), models, tasks, source)
    if args.derived:
        rows = _with_derived(store.db_path(args.db), rows, models, tasks, source)
    if not rows:
        raise EvalsuiteError("no stored scores match; see 'evalsuite ls'")
    if args.format == "lm-eval":
        if not args.out:
            raise EvalsuiteError("--format lm-eval needs --out DIR (one file per model and step)")
        files = write_lm_eval(rows, Path(args.out))
        return f"wrote {len(files)} lm-eval results files ({len(rows)} scores) under {args.out}\n"
    text = json.dumps(rows, indent=1, allow_nan=False) + "\n"
    if args.out:
        if Path(args.out).is_dir():
            raise EvalsuiteError(f"--out {args.out} is a folder; --format json writes one file "
                                 "(e.g. --out scores.json)")
        write_text(Path(args.out), text)
        return f"wrote {len(rows)} scores to {args.out}\n"
    return text


def _with_derived(db: Path, rows: list[dict], models: list[str] | None, tasks: list[str] | None,
                  source: str | None) -> list[dict]:
    """The stored scores and, for every run with samples, its p_correct and bpb (store/values.py),
    in score_rows' order."""
    from evalsuite.store.values import derived_scores

    derived = [row for m in metrics.DERIVED
               for row in plain_rows(derived_scores(db, m, models, tasks, source, every_run=True))]
    return sorted(rows + derived, key=lambda r: (r["source"], r["model"], r["step"] is not None, r["step"] or 0,
                                                 r["shots"], r["task"], r["metric"]))


def _export_samples(args, models: list[str] | None, tasks: list[str] | None, source: str | None) -> str:
    if not args.out:
        raise EvalsuiteError("--format samples needs --out FILE (.jsonl or .parquet)")
    db = store.db_path(args.db)
    store.existing(db)
    rows = write_samples(db, Path(args.out), models, tasks, source, derived=args.derived)
    if not rows:
        raise EvalsuiteError("no stored samples match (published scores have none); see 'evalsuite ls'")
    return f"wrote {rows} samples to {args.out}\n"
