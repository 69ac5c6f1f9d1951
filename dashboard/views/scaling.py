"""Scaling curves: a metric against parameter count at one checkpoint, one line per family.

The default view (all five tasks, zero-shot accuracy, final step, Pythia vs Pythia-deduped vs OPT
vs BLOOM) is the set of evaluation plots in the Pythia model card.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, download, pickers, state
from dashboard.data import options, pick
from dashboard.text import code, codes
from evalsuite.catalog.pythia import FINAL_STEP

CARD = "model card: all five"
FAMILIES = ["Pythia", "Pythia (deduped)", "OPT", "BLOOM"]


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
    steps = [int(s) for s in options(scores[scores.task.isin(shown) & (scores.shots == shots)], "step")]
    step = state.choice(cols[3].selectbox, "Step", "step", steps, FINAL_STEP if FINAL_STEP in steps
                        else (steps[-1] if steps else None), format_func=_step_name)
    families = _families(scores)
    rows = pd.concat([_at_step(pick(scores, t, metric, shots), step) for t in shown], ignore_index=True) \
        if shown and metric is not None and shots is not None else scores.iloc[0:0]
    rows = rows[rows["family"].isin(families) | (rows["source"] != "published")]
    _draw(rows, shown, metric, shots, step)
    download.offer(rows, f"scaling_{'card' if task == CARD else task}_{metric}_step{step}", "scaling")
    return rows


def _step_name(step: int | None) -> str:
    return f"{step} (final)" if step == FINAL_STEP else str(step)


def _common(scores: pd.DataFrame, tasks: list[str], column: str) -> list:
    sets = [set(options(scores, column, task=t)) for t in tasks]
    return sorted(set.intersection(*sets)) if sets else []


def _families(scores: pd.DataFrame) -> list[str]:
    present = [f for f in FAMILIES if f in set(scores["family"])]
    present += sorted(set(scores["family"]) - set(FAMILIES) - {"other"})
    return state.multi("Families", "families", present, present, container=st.sidebar,
                       help="Model families drawn on the scaling curves.")


def _at_step(rows: pd.DataFrame, step: int | None) -> pd.DataFrame:
    # OPT and BLOOM publish only final checkpoints (step NULL): compared with Pythia's final step only
    final = rows["step"].isna() & (step == FINAL_STEP)
    return rows[(rows["step"] == step) | final]


def _draw(rows: pd.DataFrame, tasks: list[str], metric: str, shots: int, step: int | None) -> None:
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
        chart = charts.scaling(part, metric, title, log_y, compact)
        grid[i % len(grid)].altair_chart(chart, width="stretch")
    if len(tasks) > 1:
        st.caption(f"{code(metric)}, {shots}-shot, at step {_step_name(step)}; bars: one stderr.")
    if step != FINAL_STEP:
        st.caption(f"OPT and BLOOM are published at their final checkpoint only, so they appear at step "
                   f"{FINAL_STEP} only.")
    elif rows["step"].isna().any():
        st.caption("OPT and BLOOM: their final checkpoints (trained on other data, for other token counts).")
    if unsized:
        st.caption(f"Not drawn (parameter count unknown): {codes(unsized)}.")
