"""Scaling curves' fit (issue 18): a family's scores at one step against log10 parameters, fitted by
the metric's own form (stats/fit.py: logistic for accuracies, a power law for losses), drawn with
its residual-bootstrap band and extrapolated past the largest model; and beside it the backtest
`benchmarks/bench_scaling_fit.py` runs: fit on the family's models up to 2.8B, predict the larger
ones, against a straight line in log parameters, saying plainly where the fit is poor (the actual
score outside the prediction's 95% band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.text import code
from evalsuite.stats import fit

SMALL = 3e9  # fitted on the models up to 2.8B; the larger ones are predicted
EXTRAPOLATE = 0.4  # the drawn fit runs this far (log10 parameters) past the largest model
MIN_MODELS = 3


@dataclass(frozen=True)
class Fitted:
    band: pd.DataFrame  # params, predicted, low, high, fit
    form: str
    models: int


def family_points(rows: pd.DataFrame, family: str) -> pd.DataFrame:
    """The family's sized scores in `rows` (one task, one step): from the source holding most of
    its models (published for Pythia on a new store), one row per model."""
    mine = rows[(rows["family"] == family) & rows["params"].notna()]
    if mine.empty:
        return mine
    source = mine.groupby("source")["model"].nunique().idxmax()
    return mine[mine["source"] == source].drop_duplicates("model").sort_values("params")


def curve(points: pd.DataFrame, metric: str, floor: float) -> Fitted | None:
    """The fit over the points, drawn from the smallest model to past the largest; None under
    MIN_MODELS models."""
    if len(points) < MIN_MODELS:
        return None
    return _curve(points[["params", "value"]].astype(float), metric, floor)


@st.cache_data(show_spinner=False, max_entries=64)  # keyed on the points themselves: 1,000 refits each
def _curve(points: pd.DataFrame, metric: str, floor: float) -> Fitted:
    form = fit.form_for(metric)
    x = np.log10(points["params"].to_numpy(dtype=float))
    at = np.linspace(x.min(), x.max() + EXTRAPOLATE, 40)
    with np.errstate(over="ignore"):  # a flat family (step 0: chance) drives the logistic to its ends
        band = fit.band(x, points["value"].to_numpy(dtype=float), form, at, floor if form == "logistic" else 0.0)
    band = band.assign(params=10 ** band["x"], fit=f"{form} fit on {len(points)} models, 95% bootstrap band")
    return Fitted(band.drop(columns="x"), form, len(points))


def floor(rows: pd.DataFrame, family: str) -> float:
    """The logistic's floor: the family's mean score at step 0 (chance, as the task scores it)."""
    return fit.floor_of(rows[rows["family"] == family])


@st.cache_data(show_spinner=False, max_entries=64)
def backtest(points: pd.DataFrame, metric: str, floor_value: float) -> pd.DataFrame:
    """Fit on the points up to 2.8B, predict the larger ones, by the metric's own form and by a
    straight line (as fit.backtest and benchmarks/bench_scaling_fit.py): model, form, actual,
    predicted, abs_error, low, high (the prediction's 95% bootstrap band), in_band."""
    train, test = points[points["params"] < SMALL], points[points["params"] >= SMALL]
    if len(train) < MIN_MODELS or test.empty:
        return pd.DataFrame()
    x_train, x_test = np.log10(train["params"].to_numpy(float)), np.log10(test["params"].to_numpy(float))
    y_train, actual = train["value"].to_numpy(float), test["value"].to_numpy(float)
    parts = []
    for form in (fit.form_for(metric), "linear"):
        start = floor_value if form == "logistic" else 0.0
        with np.errstate(over="ignore"):  # as in _curve: a flat family drives the logistic to its ends
            predicted = fit.fit(x_train, y_train, form, start, tuple(train["model"])).predict(x_test)
            band = fit.band(x_train, y_train, form, x_test, start)
        parts.append(pd.DataFrame({"model": test["model"].to_numpy(), "form": form, "actual": actual,
                                   "predicted": predicted, "abs_error": np.abs(predicted - actual),
                                   "low": band["low"].to_numpy(), "high": band["high"].to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    return out.assign(in_band=(out["low"] <= out["actual"]) & (out["actual"] <= out["high"]))


def verdict(rows: pd.DataFrame) -> list[str]:
    """Plain sentences: where the metric's own form misses (outside its band), and how it does
    against the straight line."""
    own = rows[rows["form"] != "linear"]
    line = dict(zip(rows.loc[rows["form"] == "linear", "model"], rows.loc[rows["form"] == "linear", "abs_error"]))
    out = []
    for r in own.itertuples():
        against = f"; the straight line misses by {line[r.model]:.4f}" if r.model in line else ""
        if r.in_band:
            out.append(f"{code(r.model)}: the {r.form} fit predicts {r.predicted:.4f}, actual {r.actual:.4f} "
                       f"(off by {r.abs_error:.4f}, inside its 95% band){against}.")
        else:
            out.append(f"**Poor fit** at {code(r.model)}: the {r.form} fit predicts {r.predicted:.4f} but the actual "
                       f"score is {r.actual:.4f}, off by {r.abs_error:.4f}, outside its 95% band "
                       f"[{r.low:.4f}, {r.high:.4f}]{against}.")
    return out


def show_backtest(rows: pd.DataFrame, family: str) -> None:
    """The backtest table and its verdict, beside the chart."""
    st.markdown(f"**Backtest** ({code(family)}): fitted on the models up to 2.8B, predicting the larger ones")
    shown = rows[["model", "form", "actual", "predicted", "low", "high", "abs_error", "in_band"]]
    st.dataframe(shown, hide_index=True, width="stretch", key="backtest_table",
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in ("actual", "predicted", "low", "high", "abs_error")})
    for line in verdict(rows):
        st.markdown(line)
