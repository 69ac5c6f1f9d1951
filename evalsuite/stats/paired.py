"""Is the difference between two runs real? Each task's documents, scored by both, compared
document by document: two checkpoints, two models, two sources or two dtypes.

- binary metrics (acc, acc_norm): how many documents each run gets right and how many only one
  of them does; the exact McNemar p-value on those (`mcnemar-exact`);
- continuous metrics (p_correct, bpb): Student's paired t test on the per-document differences
  (`paired-t`);
- both: the difference of the means (B minus A) with a 95% percentile interval from resampling
  the documents (stats/bootstrap.py: seeded, the same numbers on every run);
- where a run has no samples for a task (EleutherAI's published numbers are aggregates), a z
  test on the two scores and their stderrs (`unpaired-z`, lm-eval's comparison of two files),
  for the metrics the scores table holds.

`paired_tests` is the core, over rows of aligned per-document values; the training-curve
statistics (stats/curve.py) use it on consecutive checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalsuite.errors import EvalsuiteError
from evalsuite.stats.bootstrap import RESAMPLES, SEED, mean_intervals
from evalsuite.stats.pvalues import mcnemar_exact, paired_t, unpaired_z
from evalsuite.store.db import read_df
from evalsuite.store.metrics import DERIVED, DOCUMENT_KEY, metric
from evalsuite.store.values import Checkpoint, checkpoint_documents, checkpoint_scores

COLUMNS = ["task", "n_docs", "a_correct", "b_correct", "only_a", "only_b", "diff", "ci_low", "ci_high", "p_value",
           "test"]
COUNTS = ["a_correct", "b_correct", "only_a", "only_b"]  # binary metrics only
Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile, for the unpaired interval


def paired_tests(a: np.ndarray, b: np.ndarray, binary: bool, resamples: int = RESAMPLES,
                 seed: int = SEED) -> pd.DataFrame:
    """Row i of `a` against row i of `b`, over the documents (columns) both have a value for
    (NaN: none): COLUMNS but `task`, one row each. resamples=0 leaves the interval out (NaN)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    both = ~np.isnan(a) & ~np.isnan(b)
    n = both.sum(axis=1)
    d = np.where(both, b - a, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with no document: NaN
        diff = np.nansum(d, axis=1) / n
        sd = np.sqrt(np.nansum((d - diff[:, None]) ** 2, axis=1) / (n - 1))
    low, high = mean_intervals(d, resamples, seed) if resamples else (np.full(len(n), np.nan),) * 2
    frame = pd.DataFrame({"n_docs": n})
    for name, counted in zip(COUNTS, (a == 1, b == 1, a > b, b > a)):
        frame[name] = pd.array((both & counted).sum(axis=1) if binary else [None] * len(n), dtype="Int64")
    p = mcnemar_exact(frame["only_a"], frame["only_b"]) if binary else paired_t(diff, sd, n)
    frame = frame.assign(diff=diff, ci_low=low, ci_high=high, p_value=np.where(n > 0, p, np.nan),
                         test="mcnemar-exact" if binary else "paired-t")
    return frame


def unpaired_tests(a_value, a_stderr, b_value, b_stderr) -> pd.DataFrame:
    """Scores known only as a value and a standard error each: COLUMNS but `task`, one row per
    element; the interval is diff +- 1.96 x sqrt(a_stderr^2 + b_stderr^2)."""
    a_value, b_value = np.asarray(a_value, dtype=float), np.asarray(b_value, dtype=float)
    diff, se = b_value - a_value, np.hypot(np.asarray(a_stderr, dtype=float), np.asarray(b_stderr, dtype=float))
    frame = pd.DataFrame({"n_docs": pd.array([None] * len(diff), dtype="Int64")})
    for name in COUNTS:
        frame[name] = pd.array([None] * len(diff), dtype="Int64")
    return frame.assign(diff=diff, ci_low=diff - Z_95 * se, ci_high=diff + Z_95 * se,
                        p_value=unpaired_z(diff, a_stderr, b_stderr), test="unpaired-z")


def compare(db: Path, a: Checkpoint, b: Checkpoint, metric_name: str = "acc", shots: int = 0,
            tasks: list[str] | None = None, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """A against B, one row per task (COLUMNS, ordered by task): paired on the documents both
    scored where both have samples of the task, else (a stored metric) unpaired from the two
    scores; a task neither way allows is left out."""
    binary = metric(metric_name).binary
    docs = checkpoint_documents(db, a, metric_name, shots, tasks).merge(
        checkpoint_documents(db, b, metric_name, shots, tasks), on=["task", *DOCUMENT_KEY], suffixes=("_a", "_b"))
    rows = [paired_tests(group["value_a"].to_numpy(), group["value_b"].to_numpy(), binary, resamples, seed)
            .assign(task=task) for task, group in docs.groupby("task", sort=True)]  # a few tasks, not documents
    if metric_name not in DERIVED:
        scores = _score_pairs(db, a, b, metric_name, shots, tasks)
        scores = scores[~scores["task"].isin([row["task"].iloc[0] for row in rows])]
        if len(scores):
            rows.append(unpaired_tests(scores["value_a"], scores["stderr_a"], scores["value_b"], scores["stderr_b"])
                        .assign(task=scores["task"].to_numpy()))
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(rows, ignore_index=True)[COLUMNS].sort_values("task", ignore_index=True)


def _score_pairs(db: Path, a: Checkpoint, b: Checkpoint, metric_name: str, shots: int,
                 tasks: list[str] | None) -> pd.DataFrame:
    """task, value_a, stderr_a, value_b, stderr_b: the scores standing for both checkpoints."""
    # (a model with one checkpoint has step NULL, which no list of steps matches)
    steps = None if a.step is None or b.step is None else [a.step, b.step]
    scores = checkpoint_scores(db, metric_name, [a.model, b.model], tasks, shots=shots, steps=steps)

    def side(point: Checkpoint) -> pd.DataFrame:
        step = scores["step"].isna() if point.step is None else scores["step"] == point.step
        return scores.loc[(scores["model"] == point.model) & (scores["source"] == point.source) & step,
                          ["task", "value", "stderr"]]

    return side(a).merge(side(b), on="task", suffixes=("_a", "_b"))


def last_checkpoint(db: Path, model: str, source: str, shots: int) -> int | None:
    """The model's last stored checkpoint from this source (None: a model with one, OPT or
    BLOOM); an error when the source holds nothing of it."""
    frame = read_df(db, "SELECT count(*) AS rows, max(step) AS step FROM scores "
                        "WHERE model = ? AND source = ? AND shots = ?", [model, source, shots])
    if not frame["rows"].iloc[0]:
        raise EvalsuiteError(f"nothing of {model} ({shots}-shot) from source {source} is stored; see 'evalsuite ls'")
    step = frame["step"].iloc[0]
    return None if pd.isna(step) else int(step)


def pick_source(db: Path, model: str, shots: int, step: int | None = None, every_step: bool = False) -> str:
    """The source a checkpoint (or, every_step, any checkpoint of the model) is compared from
    when none is named: of the sources storing it, the only one with samples (paired tests need
    them), else the only one; an error naming them when that leaves a choice."""
    params = {"model": model, "shots": shots, **({} if every_step else {"step": step})}
    frame = read_df(db, f"""
        SELECT r.source, bool_or(s.run_id IS NOT NULL) AS samples FROM runs r
        LEFT JOIN (SELECT DISTINCT run_id FROM samples WHERE model = $model AND shots = $shots) s USING (run_id)
        WHERE r.model = $model AND r.run_id IN (SELECT run_id FROM scores WHERE model = $model AND shots = $shots)
              {"" if every_step else "AND r.step IS NOT DISTINCT FROM $step"}
        GROUP BY r.source ORDER BY r.source""", params)
    with_samples = frame.loc[frame["samples"], "source"].tolist()
    if len(with_samples) == 1 or len(frame) == 1:
        return (with_samples or frame["source"].tolist())[0]
    where = model + ("" if every_step or step is None else f"@{step}")
    if frame.empty:
        raise EvalsuiteError(f"{where} ({shots}-shot) is not stored; see 'evalsuite ls'")
    raise EvalsuiteError(f"{where} ({shots}-shot) is stored from several sources ({', '.join(frame['source'])}): "
                         "pick one with --source (or --source-a / --source-b)")
