"""The one place tests build store records by hand: a JobRecord (a run, its scores, and
optionally per-document samples) with every identity field consistent (the run's and the scores'
model, step, source, doc_limit and dtype agree, so the record's key is the scores' key)."""

from __future__ import annotations

from evalsuite.catalog.pythia import tokens_seen
from evalsuite.records import JobRecord, Run, Sample, Score

Row = tuple[str, str, float, float | None]  # task, metric, value, stderr


def job(model: str = "pythia-70m", step: int | None = 1000, rows: list[Row] | tuple = (("piqa", "acc", 0.5, 0.01),),
        *, run_id: str | None = None, source: str = "local", shots: int = 0, n: int | None = 10,
        doc_limit: int | None = None, dtype: str | None = "float32", samples: int = 0, **run_fields) -> JobRecord:
    """A checkpoint's record: one score per row, `samples` documents per task (two choices each)."""
    run_id = run_id or f"{source}-{model}-{step}"
    run = Run(run_id=run_id, source=source, model=model, step=step, doc_limit=doc_limit, dtype=dtype,
              **run_fields)
    tokens = tokens_seen(step) if step is not None else None
    scores = [Score(model, step, tokens, task, metric, shots, value, stderr, n, doc_limit, dtype, run_id, source)
              for task, metric, value, stderr in rows]
    docs = [Sample(run_id, model, step, task, shots, d, 0, True, None, [-1.0, -2.0], [True, False])
            for task in sorted({r[0] for r in rows}) for d in range(samples)]
    return JobRecord(run, shots, scores, docs)


def tasks(*names: str, value: float = 0.5) -> list[Row]:
    """One acc row per task."""
    return [(name, "acc", value, 0.01) for name in names]
