"""The one place tests build store records by hand: a JobRecord (a run, its scores, and
optionally per-document samples) with every identity field consistent (the run's and the scores'
model, step, source, doc_limit and dtype agree, so the record's key is the scores' key); samples
with chosen outcomes, the documents they are about, and a model 'learning' a task over
checkpoints for the Items view."""

from __future__ import annotations

import hashlib
import random

from evalsuite.catalog.entries import builtin_catalog
from evalsuite.records import Document, JobRecord, Run, Sample, Score

Row = tuple[str, str, float, float | None]  # task, metric, value, stderr


def job(model: str = "pythia-70m", step: int | None = 1000, rows: list[Row] | tuple = (("piqa", "acc", 0.5, 0.01),),
        *, run_id: str | None = None, source: str = "local", shots: int = 0, n: int | None = 10,
        doc_limit: int | None = None, dtype: str | None = "float32", samples: int | list[Sample] = 0,
        **run_fields) -> JobRecord:
    """A checkpoint's record: one score per row, and `samples`: that many documents per task (two
    choices each, all right), or these samples (given run ids are replaced by the run's)."""
    run_id = run_id or f"{source}-{model}-{step}"
    run = Run(run_id=run_id, source=source, model=model, step=step, doc_limit=doc_limit, dtype=dtype,
              **run_fields)
    spec = builtin_catalog().get(model)
    tokens = spec.tokens_at(step) if spec else None  # as a sweep stores them: from the model's description
    scores = [Score(model, step, tokens, task, metric, shots, value, stderr, n, doc_limit, dtype, run_id, source)
              for task, metric, value, stderr in rows]
    if isinstance(samples, int):
        samples = [Sample(run_id, model, step, task, shots, d, 0, True, None, [-1.0, -2.0], [True, False])
                   for task in sorted({r[0] for r in rows}) for d in range(samples)]
    for sample in samples:
        sample.run_id = run_id
    return JobRecord(run, shots, scores, samples)


def tasks(*names: str, value: float = 0.5) -> list[Row]:
    """One acc row per task."""
    return [(name, "acc", value, 0.01) for name in names]


def outcomes(model: str, step: int, task: str, correct: list[bool], *, shots: int = 0,
             margins: list[float] | None = None, norm: list[bool] | None = None) -> list[Sample]:
    """One sample per document (doc_id = position): two choices, the first right; right or wrong
    as `correct` says, the right choice's loglikelihood `margins` above (or below) the other's
    (default 1.0 when right, -1.0 when wrong); `norm` gives acc_norm where the task has it."""
    margins = margins or [1.0 if ok else -1.0 for ok in correct]
    return [Sample("", model, step, task, shots, d, 0, ok, None if norm is None else norm[d],
                   [-2.0 + m, -2.0], [m > 0, m <= 0])
            for d, (ok, m) in enumerate(zip(correct, margins))]


def documents(task: str, n: int, shots: int = 0) -> list[Document]:
    """What `outcomes` documents are about: two choices, the first right."""
    return [Document(task, shots, d, hashlib.sha256(f"{task}/{d}".encode()).hexdigest(),
                     f"Question {d} of {task}?\nAnswer:", [f" yes {d}", f" no {d}"], None, 0)
            for d in range(n)]


def learning(model: str, steps: list[int], task: str = "piqa", docs: int = 60, seed: int = 0,
             source: str = "local") -> list[JobRecord]:
    """A model learning a task over its checkpoints: each document turns right at its own step
    (some never), with random slips before and after; one JobRecord per step (acc and acc_norm)."""
    rng = random.Random(seed)
    turns = [rng.randrange(len(steps) + 3) for _ in range(docs)]  # past the last step: never learned
    records = []
    for i, step in enumerate(steps):
        correct = [rng.random() < (0.9 if i >= turn else 0.25) for turn in turns]
        margins = [rng.uniform(0.1, 2) * (1 if ok else -1) for ok in correct]
        samples = outcomes(model, step, task, correct, margins=margins,
                           norm=[ok if rng.random() < 0.9 else not ok for ok in correct])
        share = sum(correct) / docs
        records.append(job(model, step, [(task, "acc", share, 0.05), (task, "acc_norm", share, 0.05)],
                           source=source, n=docs, samples=samples))
    return records
