"""Along one training curve (a model's checkpoints on one task, metric, shot count and source,
`ItemsKey`): how sure each point is, which changes between consecutive evaluated checkpoints are
real, and the curve averaged over checkpoints.

- `intervals`: each checkpoint's value with a 95% interval: the percentile bootstrap over its
  documents where samples exist (`bootstrap`), value +- 1.96 stderr from the stored score
  otherwise (`stderr`: EleutherAI's published numbers);
- `changes`: each pair of consecutive evaluated checkpoints tested as two runs are
  (stats/paired.py: McNemar or paired t on the documents both scored; an unpaired z test from
  the stderrs where either lacks samples), then corrected for testing every pair of the curve
  (Holm or Benjamini-Hochberg, stats/pvalues.py) and marked significant at `alpha`;
- `smoothed`: checkpoint averaging: each point the mean of the last `window` evaluated
  checkpoints' values (itself included), as Heineman et al. (2025) average a model's final
  checkpoints; fewer at the start of the curve (`smoothed_points` says how many).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalsuite.stats.bootstrap import RESAMPLES, SEED, mean_intervals
from evalsuite.stats.paired import Z_95, paired_tests, unpaired_tests
from evalsuite.stats.pvalues import adjust
from evalsuite.store.items import ItemsKey
from evalsuite.store.metrics import DERIVED, DOCUMENT_KEY, metric
from evalsuite.store.values import checkpoint_scores, document_values

INTERVAL_COLUMNS = ["step", "value", "ci_low", "ci_high", "n", "interval"]
CHANGE_COLUMNS = ["step_before", "step", "value_before", "value", "n_docs", "a_correct", "b_correct", "only_a",
                  "only_b", "diff", "p_value", "test", "p_adjusted", "significant"]
ALPHA = 0.05
WINDOW = 3  # evaluated checkpoints averaged by `smoothed`


def _curve(db: Path, key: ItemsKey) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(steps, documents matrix: steps x documents, NaN where not scored; the stored scores of
    the curve, value/stderr/n by step). Every step of either, in order."""
    docs = document_values(db, key)
    scores = (checkpoint_scores(db, key.metric, [key.model], [key.task], key.source, key.shots)
              if key.metric not in DERIVED else pd.DataFrame(columns=["step", "value", "stderr", "n"]))
    scores = scores[["step", "value", "stderr", "n"]].dropna(subset=["step"])
    # (pd.unique hashes: 0.8M steps of a full curve are not sorted, only its 154 distinct ones)
    steps = np.union1d(pd.unique(docs["step"].to_numpy(dtype=np.int64)), scores["step"].to_numpy(dtype=np.int64))
    rows = np.searchsorted(steps, docs["step"].to_numpy(dtype=np.int64))
    columns, _ = pd.MultiIndex.from_frame(docs[DOCUMENT_KEY]).factorize() if len(DOCUMENT_KEY) > 1 \
        else pd.factorize(docs[DOCUMENT_KEY[0]])
    matrix = np.full((len(steps), columns.max() + 1 if len(columns) else 0), np.nan)
    matrix[rows, columns] = docs["value"].to_numpy(dtype=float)
    return steps, matrix, scores.set_index("step").reindex(steps)


def intervals(db: Path, key: ItemsKey, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """One row per evaluated step (INTERVAL_COLUMNS): value, its 95% interval, n (documents; the
    stored score's count where there are no samples), interval (`bootstrap` or `stderr`)."""
    steps, matrix, scores = _curve(db, key)
    n = (~np.isnan(matrix)).sum(axis=1)
    low, high = mean_intervals(matrix, resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.nansum(matrix, axis=1) / n
    sampled = n > 0
    stored = scores["value"].to_numpy(dtype=float)
    stderr = scores["stderr"].to_numpy(dtype=float)
    return pd.DataFrame({
        "step": steps, "value": np.where(sampled, value, stored),
        "ci_low": np.where(sampled, low, stored - Z_95 * stderr),
        "ci_high": np.where(sampled, high, stored + Z_95 * stderr),
        "n": pd.array(np.where(sampled, n, scores["n"].to_numpy(dtype=float)), dtype="Int64"),
        "interval": np.where(sampled, "bootstrap", "stderr")})


def changes(db: Path, key: ItemsKey, correction: str = "holm", alpha: float = ALPHA) -> pd.DataFrame:
    """One row per pair of consecutive evaluated steps (CHANGE_COLUMNS): the paired test of the
    later against the earlier where both have samples, else the unpaired one from their stored
    scores; p_adjusted by `correction` over every pair of the curve; significant: p_adjusted <=
    alpha. (No interval: these are the markers of a curve; compare two checkpoints for one.)"""
    steps, matrix, scores = _curve(db, key)
    if len(steps) < 2:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    frame = paired_tests(matrix[:-1], matrix[1:], metric(key.metric).binary, resamples=0)
    stored, stderr = scores["value"].to_numpy(dtype=float), scores["stderr"].to_numpy(dtype=float)
    unpaired = unpaired_tests(stored[:-1], stderr[:-1], stored[1:], stderr[1:])
    frame = frame.where(frame["n_docs"] > 0, unpaired)  # either lacks samples: the stored scores
    frame["n_docs"] = frame["n_docs"].astype("Int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.nansum(matrix, axis=1) / (~np.isnan(matrix)).sum(axis=1)
    value = np.where(np.isnan(value), stored, value)
    frame = frame.assign(step_before=steps[:-1], step=steps[1:], value_before=value[:-1], value=value[1:],
                         p_adjusted=adjust(frame["p_value"], correction))
    frame["significant"] = frame["p_adjusted"] <= alpha
    return frame[CHANGE_COLUMNS]


def smoothed(curve: pd.DataFrame, window: int = WINDOW) -> pd.DataFrame:
    """The curve (any frame with step and value) with `smoothed`, the mean of the last `window`
    evaluated steps' values, and `smoothed_points`, how many there were (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window {window}: at least 1 checkpoint")
    ordered = curve.sort_values("step", ignore_index=True)
    rolling = ordered["value"].rolling(window, min_periods=1)
    return ordered.assign(smoothed=rolling.mean(), smoothed_points=rolling.count().astype(int))
