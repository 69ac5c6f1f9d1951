"""Scoring one checkpoint with a sweep's prepared requests (requests.py).

What lm-eval's `evaluate()` does after building requests, minus what does not change between
checkpoints: `respond` clears every request's responses and asks the model for all of them in
one call (in lm-eval's order); `collect` runs lm-eval's own filters, each task's own
`process_results` per document and its own aggregations, and returns the typed records the store
holds. Nothing survives from one checkpoint to the next: responses and filtered responses are
replaced, and metrics are recomputed from them.

Standard errors are lm-eval's: closed-form for means; for perplexity, lm-eval's bootstrap
(`bootstrap_stderr`) reproduced exactly, resample for resample (the same Mersenne Twister
stream, seeded per chunk as lm-eval seeds it, drawn through numpy), without the process pool
lm-eval forks for it at every checkpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict

from evalsuite.lmeval.requests import PreparedRequests, PreparedTask
from evalsuite.lmeval.results import Metric, make_sample, to_scores
from evalsuite.records import JobRecord, Run

BOOTSTRAP_ITERS = 1000  # perplexity's stderr; lm-eval's default is 100,000: minutes on a CPU
FILTER = "none"  # the five tasks' only filter: lm-eval's default `take_first`


def respond(lm, prepared: PreparedRequests) -> None:
    """Fresh responses from `lm` for every prepared request (lm-eval's loglikelihood call)."""
    requests = prepared.instances
    for inst in requests:
        inst.resps, inst.filtered_resps = [], {}
    cloned = [inst for inst in requests for _ in range(inst.repeats)]
    answers = lm.loglikelihood(cloned)
    if len(answers) != len(cloned):
        raise RuntimeError(f"the backend answered {len(answers)} of {len(cloned)} requests")
    for inst, answer in zip(cloned, answers):
        inst.resps.append(answer)


def collect(prepared: PreparedRequests, run: Run, tokens: int | None = None) -> JobRecord:
    """lm-eval's filters, per-document metrics and aggregations over the current responses, as
    the run's scores and samples (`tokens`: seen at this checkpoint, where known)."""
    shots, metrics, samples = prepared.key.shots, [], []
    for task in prepared.tasks:
        task.task.apply_filters()
        raw, task_samples = _per_document(task, shots, run)
        metrics += _aggregate(task, raw, shots)
        samples += task_samples
    scores = to_scores(metrics, model=run.model, step=run.step, tokens=tokens, run_id=run.run_id,
                       source=run.source, doc_limit=run.doc_limit, dtype=run.dtype)
    return JobRecord(run, shots, scores, samples)


def _per_document(task: PreparedTask, shots: int, run: Run):
    """{metric: [value per document]} and one Sample per document, as lm-eval logs them."""
    raw: dict[str, list] = defaultdict(list)
    samples = []
    for doc in task.docs:
        resps = [inst.filtered_resps[FILTER] for inst in doc.requests]
        values = task.task.process_results(doc.doc, resps)
        for metric, value in values.items():
            raw[metric].append(value)
        samples.append(make_sample(run_id=run.run_id, model=run.model, step=run.step,
                                   task=task.name, shots=shots, doc_id=doc.doc_id,
                                   target=doc.gold, resps=resps, metrics=values, fingerprint=doc.fingerprint))
    return raw, samples


def _aggregate(task: PreparedTask, raw: dict[str, list], shots: int) -> list[Metric]:
    """lm-eval's _compute_task_aggregations for one filter: value and stderr per metric."""
    from lm_eval.api.metrics import mean, perplexity, stderr_for_metric

    aggregations = task.task.aggregation()
    n = max((len(v) for v in raw.values()), default=0)
    out = []
    for metric, items in raw.items():
        agg = aggregations.get(metric, mean)
        if agg is perplexity:
            stderr = bootstrap_stderr(perplexity, items, BOOTSTRAP_ITERS) if len(items) > 1 else None
        else:
            fn = stderr_for_metric(agg, BOOTSTRAP_ITERS)
            stderr = fn(items) if fn and len(items) > 1 else None
        stderr = stderr if stderr is not None and math.isfinite(stderr) else None
        out.append(Metric(task.name, metric, shots, float(agg(items)), stderr, n))
    return out


def bootstrap_stderr(statistic, xs: list[float], iters: int) -> float:
    """lm-eval's bootstrap_stderr, bit for bit, in one process.

    lm-eval draws chunk i (1000 resamples) from `random.Random(i).choices(xs, k=len(xs))`, i.e.
    index floor(random() * n) for each draw; numpy's legacy RandomState seeded with [i] yields
    the same random() doubles (same MT19937 seeding and 53-bit construction), so the indices,
    the resamples, each `statistic(resample)` and the final `sample_stddev` are lm-eval's own.
    """
    import numpy as np
    from lm_eval.api.metrics import sample_stddev

    values, n = np.asarray(xs, dtype=np.float64), len(xs)
    chunk = min(1000, iters)
    replicates = []
    for i in range(iters // chunk):
        rng = np.random.RandomState([i])
        for _ in range(chunk):
            index = (rng.random_sample(n) * n).astype(np.int64)
            replicates.append(statistic(values[index].tolist()))
    return sample_stddev(replicates)
