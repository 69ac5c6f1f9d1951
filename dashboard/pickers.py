"""The pickers several views share (task, metric, shots, x axis), each bound to the URL."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.data import options
from evalsuite.catalog.tasks import load_tasks

TASK_ORDER = list(load_tasks().tasks)  # tasks.yaml's order
CARD_TASKS = TASK_ORDER  # the five evaluation plots of the Pythia model card
METRIC_ORDER = ["acc", "acc_norm", "perplexity"]


def ordered(values: list, order: list) -> list:
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def task_metric_shots(scores: pd.DataFrame, cols=None) -> tuple[str, str, int]:
    """Task, then a metric that task has, then a shot count stored for both."""
    cols = cols or st.columns(3)
    tasks = ordered(options(scores, "task"), TASK_ORDER)
    task = state.choice(cols[0].selectbox, "Task", "task", tasks, tasks[0] if tasks else None)
    metrics = ordered(options(scores, "metric", task=task), METRIC_ORDER)
    metric = state.choice(cols[1].selectbox, "Metric", "metric", metrics, "acc")
    shots = [int(s) for s in options(scores[scores.task == task], "shots", metric=metric)]
    shot = state.choice(cols[2].selectbox, "Shots", "shots", shots, 0,
                        format_func=lambda s: f"{s}-shot")
    return task, metric, shot


def x_axis(cols) -> tuple[str, str]:
    x = state.choice(cols[0].radio, "x axis", "x", ["step", "tokens"], "step", horizontal=True,
                     format_func=lambda v: {"step": "training step", "tokens": "tokens seen"}[v])
    scale = state.choice(cols[1].radio, "x scale", "xscale", ["log", "linear"], "log", horizontal=True,
                         format_func=lambda v: {"log": "log (0 included)", "linear": "linear"}[v])
    return x, scale
