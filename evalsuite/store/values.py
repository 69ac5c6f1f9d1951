"""A metric's values at checkpoints, read from the samples in DuckDB: per document (what each
metric is: store/metrics.py) and per checkpoint (their mean, as lm-eval aggregates acc).

One run stands for each checkpoint (model, step, source) and task: the Items view's rule
(store/items.py `_RUN_ORDER`: the full set over a --limit trial, the most documents, then the run
that finished last), applied to the runs holding samples of that task. A document whose metric
is missing (acc_norm on LAMBADA) or not finite (a loglikelihood of -inf) has no value.

Per-document rows are read with DuckDB's fetchnumpy, not .df(): for one model's LAMBADA curve
(793,562 rows) 0.19 s against 0.99 s (measured on benchmarks/bench_items.py's store).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalsuite.store import means, stand_ins
from evalsuite.store.db import connect, existing, has_table, read_df
from evalsuite.store.items import _RUN_ORDER, ItemsKey
from evalsuite.store.metrics import DERIVED, DOCUMENT_KEY, metric, value_sql
from evalsuite.store.queries import scores_where, scores_with_representative

SCORE_COLUMNS = ["model", "step", "tokens", "task", "metric", "shots", "value", "stderr", "n", "doc_limit",
                 "dtype", "run_id", "source"]  # the scores table's, in its order


@dataclass(frozen=True)
class Checkpoint:
    """One side of a comparison: a model's checkpoint (step None: a model with one) from a source."""

    model: str
    step: int | None
    source: str


# 1 for the run standing for its checkpoint and task, over runs `r` and what they hold `p`
_RANK = (f"row_number() OVER (PARTITION BY r.model, r.step, r.source, p.task, p.shots "
         f"ORDER BY {_RUN_ORDER.format(r='r.')})")


def _chosen(samples_where: str, runs_where: str) -> str:
    """WITH clauses: `present`, the runs with samples matching `samples_where`, per task and shots;
    `chosen`, of those matching `runs_where`, the one standing for each checkpoint and task."""
    return f"""
        present AS (SELECT DISTINCT run_id, task, shots FROM samples WHERE {samples_where}),
        chosen AS (SELECT p.run_id, p.task, p.shots FROM present p JOIN runs r USING (run_id) WHERE {runs_where}
                   QUALIFY {_RANK} = 1)"""


def _values(name: str, samples_where: str, columns: list[str], order: list[str] | None) -> str:
    """Each chosen sample's `columns` and its `value` of the metric, from one source ($source),
    in this `order` (None: as stored, which spares a sort)."""
    sql, join = value_sql(name)
    return f"""
        WITH {_chosen(samples_where, "r.source = $source")}
        SELECT * FROM (SELECT {", ".join("s." + c for c in columns)}, {sql} AS value
                       FROM (SELECT * FROM SAMPLES WHERE {samples_where}) s
                       SEMI JOIN chosen USING (run_id, task, shots) {join})
        WHERE isfinite(value) {"ORDER BY " + ", ".join(order) if order else ""}"""


def _read(db: Path, name: str, sql, params: dict, columns: list[str]) -> pd.DataFrame:
    """One read-only query's rows as a frame, through fetchnumpy (see the module docstring); no
    rows for a metric that reads the documents of a store made before they were kept. `sql` may
    be a function of the open connection (what the store holds decides the query); its
    placeholders are filled for the store (stand_ins)."""
    existing(db)
    with connect(db, read_only=True) as con:
        if metric(name).needs_documents and not has_table(con, "documents"):
            return pd.DataFrame(columns=columns)
        con.execute("SET enable_progress_bar = false")  # DuckDB draws one on stderr after 2 s
        arrays = con.execute(stand_ins.fill(con, sql(con) if callable(sql) else sql), params).fetchnumpy()
    # an integer column with NULLs comes as a masked array: kept whole numbers (as .df() does)
    return pd.DataFrame({column: pd.arrays.IntegerArray(a.data, np.ma.getmaskarray(a))
                         if np.ma.isMaskedArray(a) and a.dtype.kind in "iu" else a for column, a in arrays.items()})


def document_values(db: Path, key: ItemsKey) -> pd.DataFrame:
    """One model's training curve per document: step, doc_id, value at every evaluated step of
    key.model on key.task at key.shots, from key.source, by key.metric, in no particular order
    (a whole curve is 0.8M rows at full scale: the sort would cost more than the query).
    DOCUMENT_KEY's columns name a document within the task."""
    columns = ["step", *DOCUMENT_KEY]
    sql = _values(key.metric, "model = $model AND task = $task AND shots = $shots", columns, None)
    return _read(db, key.metric, sql, key.params(), [*columns, "value"])


def checkpoint_documents(db: Path, point: Checkpoint, name: str, shots: int,
                         tasks: list[str] | None = None) -> pd.DataFrame:
    """One checkpoint per document: task, doc_id, value for every task it has samples of at this
    shot count (or these tasks); ordered by task and document."""
    where = ("model = $model AND step IS NOT DISTINCT FROM $step AND shots = $shots"
             + (" AND list_contains($tasks, task)" if tasks else ""))
    params = {"model": point.model, "step": point.step, "shots": shots, "source": point.source,
              **({"tasks": list(tasks)} if tasks else {})}
    columns = ["task", *DOCUMENT_KEY]
    return _read(db, name, _values(name, where, columns, columns), params, [*columns, "value"])


def checkpoint_scores(db: Path, name: str, models: list[str] | None = None, tasks: list[str] | None = None,
                      source: str | None = None, shots: int | None = None,
                      steps: list[int] | None = None) -> pd.DataFrame:
    """A metric's value at each checkpoint, one row per (model, step, source, task, shots) in the
    scores table's shape (SCORE_COLUMNS): a stored metric's score standing for the checkpoint
    (store.scores_with_representative), or a derived one's mean over the samples of the run
    standing for it (derived_scores). Only these models, tasks, source, shot count and steps
    where given."""
    if name in DERIVED:
        return derived_scores(db, name, models, tasks, source, shots=shots, steps=steps)
    sql, params = scores_with_representative()
    where, more = scores_where(models, tasks, source)
    where, more = (where or "WHERE true") + " AND representative AND metric = ?", [*params, *more, name]
    if shots is not None:
        where, more = where + " AND shots = ?", [*more, shots]
    if steps is not None:
        where, more = where + " AND list_contains(?, step)", [*more, list(steps)]
    return read_df(db, f"SELECT {', '.join(SCORE_COLUMNS)} FROM ({sql}) {where} "
                       "ORDER BY source, model, step NULLS FIRST, shots, task", more)


def derived_scores(db: Path, name: str, models: list[str] | None = None, tasks: list[str] | None = None,
                   source: str | None = None, every_run: bool = False, shots: int | None = None,
                   steps: list[int] | None = None) -> pd.DataFrame:
    """A derived metric's mean over documents at each checkpoint with samples, shaped as the
    scores table (SCORE_COLUMNS; stderr: the sample standard deviation over sqrt(n), as lm-eval's
    mean_stderr): for the run standing for each checkpoint and task, or for every run
    (`every_run`, as `export` lists every stored score); only these models, tasks, source, shot
    count and steps where given."""
    where, params = _filters({"model": models, "task": tasks, "shots": None if shots is None else [shots],
                              "step": steps})

    def query(con) -> str:
        return f"""
        WITH ranked AS (
            SELECT r.model, r.step, p.task, p.shots, p.value, p.stderr, p.n, r.doc_limit, r.dtype,
                   p.run_id, r.source, {_RANK} AS rank
            FROM {means.relation(con, name, where)} p JOIN runs r USING (run_id)
            {"WHERE r.source = $source" if source else ""}),
        -- tokens seen as the run's own stored scores say (the model's description decided them)
        run_tokens AS (SELECT run_id, any_value(tokens) AS tokens FROM scores
                       WHERE run_id IN (SELECT run_id FROM ranked) GROUP BY run_id)
        SELECT model, step, tokens, task, $metric AS metric, shots, value, stderr,
               n, doc_limit, dtype, run_id, source
        FROM ranked LEFT JOIN run_tokens USING (run_id) {"" if every_run else "WHERE rank = 1"}
        ORDER BY source, model, step NULLS FIRST, shots, task, run_id"""
    params.update({"metric": name, **({"source": source} if source else {})})
    return _read(db, name, query, params, SCORE_COLUMNS)


def _filters(lists: dict[str, list | None]) -> tuple[str, dict]:
    """`column IN (...)` for each column given a list (None: any), as SQL and named parameters."""
    clauses, params = ["true"], {}
    for column, values in lists.items():
        if values is not None:
            clauses.append(f"list_contains(${column}_in, {column})")
            params[f"{column}_in"] = list(values)
    return " AND ".join(clauses), params
