"""Scaling curves: a metric against parameter count at one checkpoint, one line per family.

The default view (all five tasks, zero-shot accuracy, each model's final checkpoint, Pythia vs
Pythia-deduped vs OPT vs BLOOM) is the set of evaluation plots in the Pythia model card. `final`
is each model's last stored checkpoint, and a released model's one checkpoint (no step); a
numeric step is that step of the models that have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, download, pickers, scaling_fit, state
from dashboard.data import options, pick
from dashboard.draw import draw
from dashboard.text import code, codes

CARD = "model card: all five"
FAMILIES = ["Pythia", "Pythia (deduped)", "PolyPythias", "OPT", "BLOOM"]
FINAL = "final"
NONE = "none"


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Scaling curves")
    cols = st.columns(4)
    tasks = pickers.ordered(options(scores, "task"), pickers.TASK_ORDER)
    card_ok = all(t in tasks for t in pickers.CARD_TASKS)
    task = state.choice(cols[0].selectbox, "Task", "task", ([CARD] if card_ok else []) + tasks,
                        CARD if card_ok else (tasks[0] if tasks else None))
    shown = pickers.CARD_TASKS if task == CARD else [task]
    metrics = _common(scores, shown, "metric")
    metric = state.choice(cols[1].selectbox, "Metric", "metric",
                          pickers.ordered(metrics, pickers.METRIC_ORDER), "acc")
    shots_all = [int(s) for s in _common(scores[scores.metric == metric], shown, "shots")]
    shots = state.choice(cols[2].selectbox, "Shots", "shots", shots_all, 0, format_func=lambda s: f"{s}-shot")
    steps = [str(int(s)) for s in options(scores[scores.task.isin(shown) & (scores.shots == shots)], "step")]
    step = state.choice(cols[3].selectbox, "Step", "step", [FINAL] + steps, FINAL, format_func=_step_name)
    families = _families(scores)
    rows = pd.concat([_at_step(pick(scores, t, metric, shots), step) for t in shown], ignore_index=True) \
        if shown and metric is not None and shots is not None else scores.iloc[0:0]
    rows = rows[rows["family"].isin(families) | (rows["source"] != "published")]
    family = _fit_family(rows)
    floors = {t: scaling_fit.floor(pick(scores, t, metric, shots), family) for t in shown} if family != NONE else {}
    _draw(rows, shown, metric, shots, step, Fit(family, floors))
    download.offer(rows, f"scaling_{'card' if task == CARD else task}_{metric}_step{step}", "scaling")
    return rows


def _step_name(step: str) -> str:
    return "final (each model's last)" if step == FINAL else step


def _common(scores: pd.DataFrame, tasks: list[str], column: str) -> list:
    sets = [set(options(scores, column, task=t)) for t in tasks]
    return sorted(set.intersection(*sets)) if sets else []


def _families(scores: pd.DataFrame) -> list[str]:
    present = [f for f in FAMILIES if f in set(scores["family"])]
    present += sorted(set(scores["family"]) - set(FAMILIES) - {"other"})
    return state.multi("Families", "families", present, present, container=st.sidebar,
                       help="Model families drawn on the scaling curves.")


def _at_step(rows: pd.DataFrame, step: str) -> pd.DataFrame:
    """The rows at `step`; at FINAL, each model's (and source's) last step, and the released
    models' one checkpoint (step NULL: OPT, BLOOM, an imported released model)."""
    if step != FINAL:
        return rows[rows["step"] == int(step)]
    last = rows.groupby(["model", "source"])["step"].transform("max")
    return rows[rows["step"].isna() | (rows["step"] == last)]


@dataclass(frozen=True)
class Fit:
    family: str  # NONE: no fit
    floors: dict[str, float]  # per task: the logistic's floor (the family's step-0 score)


def _fit_family(rows: pd.DataFrame) -> str:
    """Which family the scaling fit is drawn for (sidebar): Pythia by default."""
    sized = rows[rows["params"].notna()]
    counts = sized.groupby("family")["model"].nunique()
    present = [f for f in counts.index if counts[f] >= scaling_fit.MIN_MODELS]
    ordered = [f for f in FAMILIES if f in present] + sorted(set(present) - set(FAMILIES))
    return state.choice(st.sidebar.selectbox, "Scaling fit for", "fit", [NONE, *ordered],
                        "Pythia" if "Pythia" in ordered else NONE,
                        help="A logistic (accuracies) or power law (losses) in log parameters, with a "
                        "residual-bootstrap 95% band, drawn past the largest model.")


def _fit(part: pd.DataFrame, metric: str, fitting: Fit):
    """The task's scaling fit where there is one (else None), and the points it was fitted on."""
    points = scaling_fit.family_points(part, fitting.family) if fitting.family != NONE else part.iloc[0:0]
    return scaling_fit.curve(points, metric, fitting.floors.get(str(part["task"].iloc[0]), 0.0)), points


def _draw(rows: pd.DataFrame, tasks: list[str], metric: str, shots: int, step: str, fitting: Fit) -> None:
    sized = rows[rows["params"].notna()]
    unsized = sorted(set(rows["model"]) - set(sized["model"]))
    if sized.empty:
        st.info("Nothing with a known parameter count is stored for this selection; pick another "
                "step, shot count or task.")
    log_y = metric == "perplexity"
    grid = st.columns(min(len(tasks), 3)) if len(tasks) > 1 else [st.container()]
    for i, task in enumerate(tasks):
        part = sized[sized["task"] == task]
        if part.empty:
            continue
        compact = len(tasks) > 1
        title = f"{task} {metric}" if compact else f"{task} {metric}, {shots}-shot, step {_step_name(step)}"
        fitted, points = _fit(part, metric, fitting)
        band = fitted.band if fitted else None
        if compact:
            draw(grid[i % len(grid)], charts.scaling, part, metric, title, log_y, compact, band)
            continue
        left, right = st.columns([3, 2])
        draw(left, charts.scaling, part, metric, title, log_y, compact, band)
        with right:
            _backtest(points, metric, fitting, task, fitted)
    if len(tasks) > 1:
        st.caption(f"{code(metric)}, {shots}-shot, at step {_step_name(step)}; bars: one stderr.")
    if step != FINAL:
        st.caption("Released models (OPT, BLOOM, and others with no training steps) have one checkpoint: "
                   "they appear under step final.")
    elif rows["step"].isna().any():
        released = codes(sorted(set(rows.loc[rows["step"].isna(), "model"]))[:12])
        st.caption(f"Each model at its last stored checkpoint; released models ({released}) at their one "
                   "checkpoint, trained on other data for other token counts.")
    if unsized:
        st.caption(f"Not drawn (parameter count unknown): {codes(unsized)}.")
    if fitting.family != NONE and len(tasks) > 1:
        st.caption(f"Dashed grey: the {code(fitting.family)} fit with its 95% bootstrap band, drawn past the largest "
                   "model; pick one task for its backtest (fit on the models up to 2.8B, predict the larger).")


def _backtest(points: pd.DataFrame, metric: str, fitting: Fit, task: str, fitted) -> None:
    if fitting.family == NONE:
        st.caption("Pick a family under Scaling fit (sidebar) for its fit and backtest.")
        return
    if fitted is None:
        st.info(f"Too few {code(fitting.family)} models with a known size here to fit ({len(points)}; "
                f"at least {scaling_fit.MIN_MODELS}).")
        return
    st.caption(f"Dashed grey: {fitted.form} fit of {code(fitting.family)} on {fitted.models} models, 95% "
               "residual-bootstrap band, drawn past the largest model.")
    rows = scaling_fit.backtest(points, metric, fitting.floors.get(task, 0.0))
    if rows.empty:
        st.info(f"No backtest: it needs at least {scaling_fit.MIN_MODELS} {code(fitting.family)} models up to "
                "2.8B and one larger at this step.")
        return
    scaling_fit.show_backtest(rows, fitting.family)
