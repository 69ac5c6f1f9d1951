"""Score against model size: a named functional form fitted to a family's scores at one step,
extrapolated with a bootstrap band, and a backtest of how far that lands from larger models.

x is log10 of the parameter count, or of the training compute C = 6 N D (N parameters, D tokens
seen at the step; at one step of Pythia every size has seen the same tokens, so the two fits are
the same curve, shifted). The forms, each two parameters (a, b):

- `logistic`, for scores between chance and 1 (acc, acc_norm, p_correct):
  y = floor + (1 - floor) / (1 + exp(-(a + b x))), the floor the score of random weights (the
  family's mean at step 0 where stored, see `floor_of`); fitted by least squares on y
  (Levenberg-Marquardt from the fit of the linearised logit);
- `power`, for a loss that falls with size (bpb): y = exp(a + b x), a power law in N, a
  straight line in log y (fitted there);
- `power-loss`, for perplexity: the same power law on the loss it exponentiates, ln y =
  exp(a + b x) (fitted as a straight line in ln ln y); a power law on perplexity itself falls
  towards 0, which perplexity never reaches;
- `linear`, the simplest baseline: y = a + b x, a straight line in log parameters.

The band: residuals resampled onto the fitted values (in the space each form is fitted in),
refitted `resamples` times, seeded; the percentile interval of the predictions. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalsuite.records import Model
from evalsuite.stats.bootstrap import LEVEL, RESAMPLES, SEED
from evalsuite.stats.models import known, params_of, tokens_per_step_of

FORMS = ("logistic", "power", "power-loss", "linear")
LOSS_FORMS = {"bpb": "power", "perplexity": "power-loss"}  # lower is better, unbounded: power laws
BACKTEST_COLUMNS = ["task", "metric", "model", "actual", "form", "predicted", "abs_error"]
_ITERATIONS = 200  # at most; the fit stops once _PATIENCE steps in a row lower no row's error
_PATIENCE = 20  # by then a failing row's damping has grown 3**20-fold: its steps are tiny descents


def form_for(metric: str) -> str:
    """The form that suits a metric: a power law for the losses, else `logistic`."""
    return LOSS_FORMS.get(metric, "logistic")


@dataclass(frozen=True)
class ScalingFit:
    form: str
    a: float
    b: float
    floor: float  # logistic only: the score at no skill (0 for the others)
    models: tuple[str, ...]  # fitted on

    def predict(self, x) -> np.ndarray:
        """The fitted score at x (log10 parameters or compute)."""
        return _curve(self.form, np.array([[self.a, self.b]]), np.atleast_1d(np.asarray(x, dtype=float)),
                      self.floor)[0]


def log_size(models, steps=None, axis: str = "params", facts: dict[str, Model] | None = None) -> np.ndarray:
    """x for these models: log10 parameters, or log10 of 6 x parameters x tokens at each step
    (NaN where the parameters or the tokens per step are unknown). `facts`: stats.models.known()."""
    facts = facts if facts is not None else known()
    params = np.array([params_of(m, facts) or np.nan for m in models], dtype=float)
    if axis == "params":
        return np.log10(params)
    if axis != "compute":
        raise ValueError(f"unknown axis {axis!r}: params or compute")
    per_step = np.array([tokens_per_step_of(m, facts) or np.nan for m in models], dtype=float)
    return np.log10(6 * params * np.asarray(steps, dtype=float) * per_step)


def fit(x, y, form: str, floor: float = 0.0, models=()) -> ScalingFit:
    """The form fitted to the points (x, y)."""
    (a, b), = _fit(form, np.asarray(x, dtype=float), np.atleast_2d(np.asarray(y, dtype=float)), floor)
    return ScalingFit(form, float(a), float(b), floor, tuple(models))


def band(x, y, form: str, at, floor: float = 0.0, resamples: int = RESAMPLES, seed: int = SEED,
         level: float = LEVEL) -> pd.DataFrame:
    """x (the points asked, `at`), predicted, low, high: the fit's predictions there and their
    percentile interval over `resamples` residual-bootstrap refits."""
    x, y, at = (np.asarray(v, dtype=float) for v in (x, y, at))
    coef = _fit(form, x, y[None, :], floor)
    fitted = _curve(form, coef, x, floor)[0]
    space = _space(form)
    residuals = space(y) - space(fitted)
    rng = np.random.default_rng(seed)
    drawn = space(fitted) + residuals[rng.integers(0, len(y), size=(resamples, len(y)))]
    replicas = _curve(form, _fit(form, x, _unspace(form)(drawn), floor), at, floor)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(replicas, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"x": at, "predicted": _curve(form, coef, at, floor)[0], "low": low, "high": high})


def floor_of(scores: pd.DataFrame) -> float:
    """The logistic's floor for these scores (model, step, value): their mean at step 0 (random
    weights: chance, as the task and metric score it), else 0."""
    start = scores.loc[scores["step"] == 0, "value"]
    return float(start.mean()) if len(start) else 0.0


def backtest(scores: pd.DataFrame, train: list[str], test: list[str], step: int,
             forms: tuple[str, ...] | None = None, axis: str = "params") -> pd.DataFrame:
    """Fit each (task, metric) on the `train` models' scores at `step` and predict the `test`
    models' (BACKTEST_COLUMNS, one row per task, metric, test model and form; forms: the
    metric's own (form_for) and `linear`, unless given). `scores`: task, metric, model, step, value."""
    rows = []
    for (task, metric), group in scores.groupby(["task", "metric"], sort=True):  # a few (task, metric)
        at = group[group["step"] == step].set_index("model")["value"]
        if not set(train + test) <= set(at.index):
            continue
        for form in forms or (form_for(str(metric)), "linear"):
            model = fit(log_size(train, [step] * len(train), axis), at[train].to_numpy(), form,
                        floor_of(group) if form == "logistic" else 0.0, train)
            predicted = model.predict(log_size(test, [step] * len(test), axis))
            rows.append(pd.DataFrame({"task": task, "metric": metric, "model": test, "actual": at[test].to_numpy(),
                                      "form": form, "predicted": predicted}))
    if not rows:
        return pd.DataFrame(columns=BACKTEST_COLUMNS)
    frame = pd.concat(rows, ignore_index=True)
    return frame.assign(abs_error=(frame["predicted"] - frame["actual"]).abs())[BACKTEST_COLUMNS]


def _space(form: str):
    """Where the form is a least-squares fit (and its residuals are resampled)."""
    return {"power": np.log, "power-loss": lambda v: np.log(np.log(v))}.get(form, lambda v: v)


def _unspace(form: str):
    return {"power": np.exp, "power-loss": lambda v: np.exp(np.exp(v))}.get(form, lambda v: v)


def _curve(form: str, coef: np.ndarray, x: np.ndarray, floor: float) -> np.ndarray:
    """Each row of coef (a, b) evaluated at x: rows x points."""
    line = coef[:, :1] + coef[:, 1:] * x[None, :]
    if form == "linear":
        return line
    if form in ("power", "power-loss"):
        return _unspace(form)(line)
    if form == "logistic":
        return floor + (1 - floor) / (1 + np.exp(-line))
    raise ValueError(f"unknown form {form!r}: one of {', '.join(FORMS)}")


def _fit(form: str, x: np.ndarray, y: np.ndarray, floor: float) -> np.ndarray:
    """(a, b) for each row of y (replicas x points), all fitted at once."""
    if form in ("linear", "power", "power-loss"):
        return _line(x, _space(form)(y))
    if form != "logistic":
        raise ValueError(f"unknown form {form!r}: one of {', '.join(FORMS)}")
    share = np.clip((y - floor) / (1 - floor), 0.01, 0.99)
    return _levenberg_marquardt(x, y, floor, _line(x, np.log(share / (1 - share))))


def _line(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares (intercept, slope) of each row of y on x."""
    xc = x - x.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ xc / (xc @ xc)
    return np.stack([y.mean(axis=1) - slope * x.mean(), slope], axis=1)


def _levenberg_marquardt(x: np.ndarray, y: np.ndarray, floor: float, coef: np.ndarray) -> np.ndarray:
    """The logistic's least squares on y from `coef`, every row at once: a damped Gauss-Newton
    step per row, kept when it lowers that row's squared error (damping eased), else damped more."""
    def error(c: np.ndarray) -> np.ndarray:
        return ((y - _curve("logistic", c, x, floor)) ** 2).sum(axis=1)

    damping, current = np.full(len(y), 1e-3), error(coef)
    design = np.stack([np.ones_like(x), x], axis=1)  # d(a + b x) / d(a, b)
    stalled = 0
    for _ in range(_ITERATIONS):
        p = 1 / (1 + np.exp(-(coef[:, :1] + coef[:, 1:] * x[None, :])))
        jacobian = ((1 - floor) * p * (1 - p))[:, :, None] * design[None]  # rows x points x 2
        residual = y - (floor + (1 - floor) * p)
        jtj = np.einsum("rpi,rpj->rij", jacobian, jacobian)
        jtj += damping[:, None, None] * np.eye(2) * np.maximum(jtj.diagonal(axis1=1, axis2=2), 1e-12)[:, None, :]
        step = np.linalg.solve(jtj, np.einsum("rpi,rp->ri", jacobian, residual)[:, :, None])[:, :, 0]
        trial = coef + step
        trial_error = error(trial)
        better = trial_error < current
        # Converged: no row's error lowered by more than rounding for _PATIENCE steps (a typical
        # fit of 1,000 bootstrap rows of a Pythia family is done in about 30 of the 200).
        stalled = 0 if (better & (current - trial_error > 1e-12 * current)).any() else stalled + 1
        coef = np.where(better[:, None], trial, coef)
        current = np.where(better, trial_error, current)
        damping = np.clip(np.where(better, damping / 3, damping * 3), 1e-12, 1e12)
        if stalled == _PATIENCE:
            break
    return coef
