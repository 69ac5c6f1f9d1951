"""The percentile bootstrap over documents, seeded and vectorised.

`mean_intervals(values)` takes a matrix with one row per quantity (a checkpoint's per-document
scores, or the per-document differences between two runs) and one column per document (NaN where
that document has no value in the row), and returns the 95% percentile interval of each row's
mean over its documents resampled with replacement, `resamples` times.

Two ways to draw the same thing, both from numpy's PCG64 generator seeded with `seed` (the same
values give the same interval on every run):

- rows taking a few distinct values (right or wrong: 0 and 1; the difference of two: -1, 0, 1):
  drawing n documents with replacement only matters through how many of each value are drawn,
  which is a multinomial draw with the values' shares; numpy draws those counts directly, for
  every row and resample at once. Exact for every row, whatever documents it lacks.
- other rows (continuous metrics): each resample draws n documents once, shared by every row:
  a few rows (a comparison) read the drawn documents' values directly; many rows (a training
  curve) take one matrix product of the values with the resamples' counts of each document. A
  row lacking some documents keeps the drawn documents it has, so its resample size varies
  around its own count (a binomial draw), which widens its interval slightly; rows with every
  document (a full sweep, the documents two runs share) are exact.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000  # how many times the documents are resampled (Efron and Tibshirani: >= 1000 for percentiles)
SEED = 0
LEVEL = 0.95
DISCRETE = 8  # at most this many distinct values: the multinomial draw
FEW_ROWS = 4  # up to this many rows read the drawn values; more, the matrix product
_CHUNK = 250  # resamples drawn at once by the matrix path: a (chunk x documents) matrix of counts


def mean_intervals(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile interval of each row's mean (NaN for a row with no value)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    present = ~np.isnan(values)
    rng = np.random.default_rng(seed)
    distinct = np.unique(values[present])
    if len(distinct) == 0 or resamples <= 0:
        return np.full(len(values), np.nan), np.full(len(values), np.nan)
    if len(distinct) <= DISCRETE:
        means = _multinomial_means(values, present, distinct, resamples, rng)
    elif len(values) <= FEW_ROWS:
        means = _drawn_means(values, resamples, rng)
    else:
        means = _matrix_means(values, present, resamples, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.full(len(values), np.nan), np.full(len(values), np.nan)
    has = present.any(axis=1)
    if has.any():
        # a matrix-path resample that draws none of a row's documents has no mean for it: left out
        low[has], high[has] = np.nanpercentile(means[has], [tail, 100 - tail], axis=1)
    return low, high


def _multinomial_means(values: np.ndarray, present: np.ndarray, distinct: np.ndarray, resamples: int,
                       rng: np.random.Generator) -> np.ndarray:
    """rows x resamples means: each value's count drawn from Multinomial(n, its share in the row)."""
    counts = np.stack([(values == v).sum(axis=1) for v in distinct], axis=1)  # rows x distinct values
    n = present.sum(axis=1)
    shares = counts / np.maximum(n, 1)[:, None]
    shares[n == 0, 0] = 1.0  # (a row with no value: any valid shares; its interval is NaN)
    drawn = rng.multinomial(n, shares, size=(resamples, len(values)))  # resamples x rows x values
    with np.errstate(invalid="ignore", divide="ignore"):
        return (drawn @ distinct / n).T


def _drawn_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """rows x resamples means of the drawn documents' values, every row with the same draws."""
    docs, gaps = values.shape[1], np.isnan(values).any()
    means = np.empty((len(values), resamples))
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        drawn = values[:, rng.integers(0, docs, size=(size, docs))]  # rows x size x documents
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, start:start + size] = (np.nansum(drawn, axis=2) / (~np.isnan(drawn)).sum(axis=2) if gaps
                                            else drawn.mean(axis=2))
    return means


def _matrix_means(values: np.ndarray, present: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """rows x resamples means, every row resampled with the same draws of documents."""
    rows, docs = values.shape
    # float32 halves the matrix products' time; the counts are small whole numbers, exact in it
    filled = np.where(present, values, 0.0).astype(np.float32)
    gaps = not present.all()  # with no missing value every row's denominator is `docs`
    means = np.empty((rows, resamples))
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        draws = rng.integers(0, docs, size=(size, docs)) + docs * np.arange(size)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * docs).reshape(size, docs).astype(np.float32)
        drawn = (present.astype(np.float32) @ counts.T) if gaps else docs
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, start:start + size] = (filled @ counts.T) / drawn
    return means
