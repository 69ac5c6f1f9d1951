"""p-values and their corrections, in vectorised numpy (no scipy: it is not a dependency).

- `mcnemar_exact`: the exact McNemar test: a two-sided binomial test (p = 1/2) on the documents
  only one of two runs gets right;
- `paired_t`: Student's t test on per-document differences (continuous metrics);
- `unpaired_z`: two scores known only by their values and standard errors (published numbers);
- `adjust`: Holm's or Benjamini-Hochberg's correction over a family of p-values.

Every one takes and returns arrays, one test per element. The binomial and t distributions
both come from the regularised incomplete beta function, computed by its continued fraction
(Numerical Recipes' `betacf`, the modified Lentz method), to double precision; tests/test_stats.py
checks each against scipy.stats.
"""

from __future__ import annotations

import math

import numpy as np

CORRECTIONS = ("holm", "bh")
_lgamma = np.vectorize(math.lgamma, otypes=[float])  # one call per test, never per document
_erfc = np.vectorize(math.erfc, otypes=[float])
_TINY = 1e-300


def betainc(a, b, x) -> np.ndarray:
    """The regularised incomplete beta function I_x(a, b), elementwise (a, b > 0, 0 <= x <= 1)."""
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, x)))
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); above, I_x(a, b) = 1 - I_{1-x}(b, a)
    flip = x > (a + 1) / (a + b + 2)
    a2, b2, x2 = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, 1 - x, x)
    with np.errstate(divide="ignore"):
        log_front = (a2 * np.log(x2) + b2 * np.log1p(-x2) - np.log(a2)
                     - (_lgamma(a2) + _lgamma(b2) - _lgamma(a2 + b2)))
    value = np.exp(log_front) * _continued_fraction(a2, b2, x2)
    return np.clip(np.where(flip, 1 - value, value), 0.0, 1.0)


def _continued_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray, iterations: int = 10_000) -> np.ndarray:
    c, d = np.ones_like(x), 1 - (a + b) * x / (a + 1)
    d = 1 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    for m in range(1, iterations + 1):
        delta = np.ones_like(x)
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = 1 + numerator / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            delta = d * c
            h = h * delta
        if np.all(np.abs(delta - 1) < 1e-15):
            break
    return h


def mcnemar_exact(only_a, only_b) -> np.ndarray:
    """Two-sided exact McNemar p-values: of the n = only_a + only_b discordant documents, the
    chance of a split at least as uneven under p = 1/2: min(1, 2 P(X <= min(only_a, only_b)))
    with X ~ Binomial(n, 1/2), where P(X <= k) = I_{1/2}(n - k, k + 1). 1 when n = 0."""
    only_a, only_b = np.asarray(only_a, dtype=float), np.asarray(only_b, dtype=float)
    n, k = only_a + only_b, np.minimum(only_a, only_b)
    tail = betainc(np.maximum(n - k, 1), k + 1, np.full_like(n, 0.5))  # (n - k = 0 only when n = 0)
    return np.where(n > 0, np.minimum(1.0, 2 * tail), 1.0)


def paired_t(mean, sd, n) -> np.ndarray:
    """Two-sided p-values of Student's t test that per-document differences average zero, from
    their mean, sample standard deviation (ddof 1) and count: t = mean / (sd / sqrt(n)), n - 1
    degrees of freedom, p = I_{df / (df + t^2)}(df / 2, 1 / 2). 1 when every difference is 0, NaN
    with fewer than two documents."""
    mean, sd, n = (np.asarray(v, dtype=float) for v in (mean, sd, n))
    df = n - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
        p = betainc(np.maximum(df, 1) / 2, 0.5, np.where(np.isfinite(t), df / (df + t * t), 0.0))
    p = np.where((sd == 0) & (mean == 0), 1.0, p)
    return np.where(df >= 1, p, np.nan)


def unpaired_z(diff, se_a, se_b) -> np.ndarray:
    """Two-sided p-values of a z test on a difference of two independent scores with these standard
    errors (lm-eval's comparison of two results files): z = diff / sqrt(se_a^2 + se_b^2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(np.asarray(diff, dtype=float)) / np.hypot(se_a, se_b)
    return np.where(np.isnan(z), np.nan, _erfc(np.nan_to_num(z, posinf=1e300) / math.sqrt(2)))


def adjust(p_values, method: str) -> np.ndarray:
    """Adjusted p-values over one family of tests (NaN left out and kept): `holm` (Holm-Bonferroni,
    family-wise error) or `bh` (Benjamini-Hochberg, false discovery rate). A test is significant
    at level alpha when its adjusted p-value is <= alpha."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}: one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    present = ~np.isnan(p)
    ranked = np.sort(p[present])
    m = len(ranked)
    if m == 0:
        return out
    if method == "holm":  # the i-th smallest (from 0) times m - i, never below an earlier one
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:  # the i-th smallest (from 1) times m / i, never above a later one
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    order = np.argsort(p[present], kind="stable")
    placed = np.empty(m)
    placed[order] = np.minimum(adjusted, 1.0)
    out[present] = placed
    return out
