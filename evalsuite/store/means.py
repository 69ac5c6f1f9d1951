"""The derived metrics' per-run means (the sample_means table): each run's p_correct and bpb on
each task and shot count, worked out in DuckDB from its samples and their documents (store/metrics.py
says what each metric is) and stored beside them. A training curve of every checkpoint then reads
a few thousand rows instead of every sample's loglikelihood list (LAMBADA's 12.7M at full scale:
0.9 s in a fresh connection on the store benchmarks/bench_items.py builds, timed by a throwaway
probe).

A mean depends on its run's samples and on their documents (bpb needs the right choice's text,
p_correct a WinoGrande sample's right answer where the sample holds none), so each writer that
changes either works the affected means out again (`refresh`), in its own transaction:
- a job written or replaced (store/writes.py): its run, and each run whose samples it replaced;
- documents stored for a task and shot count that gains any: every run with samples of it;
- a store made before this table: every run, once, at the next init (schema.migrate).

A store no evalsuite of today has written has no such table; it is read by working the means
out with the same SQL (`relation`).
"""

from __future__ import annotations

from evalsuite.records import SampleMean, columns
from evalsuite.store import stand_ins
from evalsuite.store.db import has_table
from evalsuite.store.metrics import DERIVED, value_sql

COLUMNS = ", ".join(columns(SampleMean))


def _per_run(name: str, where: str) -> str:
    """SampleMean's columns for the metric over the samples matching `where` (a condition on
    samples' run_id, model, step, task, shots): one row per run, task and shots with a value."""
    sql, join = value_sql(name)
    finite = "FILTER (WHERE isfinite(value))"
    return f"""
        SELECT run_id, any_value(model) AS model, any_value(step) AS step, task, shots, '{name}' AS metric,
               avg(value) {finite} AS value, stddev_samp(value) {finite} / sqrt(count(*) {finite}) AS stderr,
               (count(*) {finite})::INTEGER AS n
        FROM (SELECT s.run_id, s.model, s.step, s.task, s.shots, {sql} AS value
              FROM (SELECT * FROM SAMPLES WHERE {where}) s {join})
        GROUP BY run_id, task, shots HAVING count(*) {finite} > 0"""


def relation(con, name: str, where: str) -> str:
    """The metric's per-run means matching `where` (as _per_run), as a parenthesised relation:
    the stored ones, or worked out where the store has none yet (its SQL then names stand_ins'
    placeholders)."""
    if has_table(con, "sample_means"):
        return f"(SELECT {COLUMNS} FROM sample_means WHERE metric = '{name}' AND {where})"
    return f"({_per_run(name, where)})"


def refresh(con, where: str, params: dict) -> None:
    """Work out again, through an open transaction, the means of the runs whose samples match
    `where` (a condition on run_id, model, step, task, shots; `params` its named parameters).
    The condition must take a run's samples of a task and shot count whole."""
    con.execute(f"DELETE FROM sample_means WHERE {where}", params).fetchall()
    for name in DERIVED:
        con.execute(stand_ins.fill(con, f"INSERT INTO sample_means ({COLUMNS}) {_per_run(name, where)}"),
                    params).fetchall()
