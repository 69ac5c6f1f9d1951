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

from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Curve:
    """Every evaluated step of a curve, in order, with its documents and its stored score."""

    steps: np.ndarray
    matrix: np.ndarray  # steps x documents, NaN where a document was not scored there
    stored: pd.DataFrame  # value, stderr, n of the stored score by step (NaN where none)

    @property
    def n(self) -> np.ndarray:
        return (~np.isnan(self.matrix)).sum(axis=1)

    @property
    def value(self) -> np.ndarray:
        """The mean over documents where there are samples, else the stored score."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, np.nansum(self.matrix, axis=1) / self.n, self.column("value"))

    def column(self, name: str) -> np.ndarray:
        """A stored column as floats, NaN where missing (a nullable integer's NA included)."""
        return pd.to_numeric(self.stored[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _curve(db: Path, key: ItemsKey) -> _Curve:
    docs = document_values(db, key)
    scores = (checkpoint_scores(db, key.metric, [key.model], [key.task], key.source, key.shots)
              if key.metric not in DERIVED else pd.DataFrame(columns=["step", "value", "stderr", "n"]))
    scores = scores[["step", "value", "stderr", "n"]].dropna(subset=["step"])
    # (pd.unique hashes: 0.8M steps of a full curve are not sorted, only its 154 distinct ones)
    steps = np.union1d(pd.unique(docs["step"].to_numpy(dtype=np.int64)), scores["step"].to_numpy(dtype=np.int64))
    rows = np.searchsorted(steps, docs["step"].to_numpy(dtype=np.int64))
    columns = docs.groupby(DOCUMENT_KEY, sort=False, dropna=False).ngroup().to_numpy()  # a column per document
    matrix = np.full((len(steps), columns.max() + 1 if len(columns) else 0), np.nan)
    matrix[rows, columns] = docs["value"].to_numpy(dtype=float)
    return _Curve(steps, matrix, scores.set_index("step").reindex(steps))


def intervals(db: Path, key: ItemsKey, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """One row per evaluated step (INTERVAL_COLUMNS): value, its 95% interval, n (documents; the
    stored score's count where there are no samples), interval (`bootstrap` or `stderr`)."""
    return _intervals(_curve(db, key), resamples, seed)


def _intervals(curve: _Curve, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    low, high = mean_intervals(curve.matrix, resamples, seed)
    sampled, value, stderr = curve.n > 0, curve.value, curve.column("stderr")
    return pd.DataFrame({
        "step": curve.steps, "value": value,
        "ci_low": np.where(sampled, low, value - Z_95 * stderr),
        "ci_high": np.where(sampled, high, value + Z_95 * stderr),
        "n": pd.array(np.where(sampled, curve.n, curve.column("n")), dtype="Int64"),
        "interval": np.where(sampled, "bootstrap", "stderr")})


def changes(db: Path, key: ItemsKey, correction: str = "holm", alpha: float = ALPHA) -> pd.DataFrame:
    """One row per pair of consecutive evaluated steps (CHANGE_COLUMNS): the paired test of the
    later against the earlier where both have samples, else the unpaired one from their stored
    scores; p_adjusted by `correction` over every pair of the curve; significant: p_adjusted <=
    alpha. (No interval: these are the markers of a curve; compare two checkpoints for one.)"""
    return _changes(_curve(db, key), key, correction, alpha)


def _changes(curve: _Curve, key: ItemsKey, correction: str = "holm", alpha: float = ALPHA) -> pd.DataFrame:
    if len(curve.steps) < 2:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    frame = paired_tests(curve.matrix[:-1], curve.matrix[1:], metric(key.metric).binary, resamples=0)
    stored, stderr = curve.column("value"), curve.column("stderr")
    unpaired = unpaired_tests(stored[:-1], stderr[:-1], stored[1:], stderr[1:])
    frame = frame.where(frame["n_docs"] > 0, unpaired)  # either lacks samples: the stored scores
    frame["n_docs"] = frame["n_docs"].astype("Int64")
    value = curve.value
    frame = frame.assign(step_before=curve.steps[:-1], step=curve.steps[1:], value_before=value[:-1],
                         value=value[1:], p_adjusted=adjust(frame["p_value"], correction))
    frame["significant"] = frame["p_adjusted"] <= alpha
    return frame[CHANGE_COLUMNS]


@dataclass(frozen=True)
class CurveStats:
    intervals: pd.DataFrame  # as intervals()
    changes: pd.DataFrame  # as changes()


def intervals_and_changes(db: Path, key: ItemsKey, correction: str = "holm", alpha: float = ALPHA) -> CurveStats:
    """intervals() and changes() of one curve, its samples read once (the dashboard shows both)."""
    curve = _curve(db, key)
    return CurveStats(_intervals(curve), _changes(curve, key, correction, alpha))


def smoothed(curve: pd.DataFrame, window: int = WINDOW) -> pd.DataFrame:
    """The curve (any frame with step and value) with `smoothed`, the mean of the last `window`
    evaluated steps' values, and `smoothed_points`, how many there were (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window {window}: at least 1 checkpoint")
    ordered = curve.sort_values("step", ignore_index=True)
    rolling = ordered["value"].rolling(window, min_periods=1)
    return ordered.assign(smoothed=rolling.mean(), smoothed_points=rolling.count().astype(int))
