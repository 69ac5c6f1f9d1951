"""The pickers several views share (task, metric, shots, x axis, models grouped by family), each
bound to the URL."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.data import FAMILY_NAMES, OTHER, PUBLISHED, options
from evalsuite.catalog.tasks import load_tasks
from evalsuite.store.metrics import DERIVED

TASK_ORDER = list(load_tasks().tasks)  # tasks.yaml's order
CARD_TASKS = TASK_ORDER  # the five evaluation plots of the Pythia model card
METRIC_ORDER = ["acc", "acc_norm", "perplexity"]
FAMILY_ORDER = list(FAMILY_NAMES.values())  # then the others by name, 'other' last


def ordered(values: list, order: list) -> list:
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def task_metric_shots(scores: pd.DataFrame, cols=None, derived_tasks=()) -> tuple[str, str, int]:
    """Task, then a metric that task has, then a shot count stored for both. On the tasks in
    `derived_tasks` (those with per-document samples) also p_correct and bpb, computed from the
    samples, at acc's shot counts."""
    cols = cols or st.columns(3)
    tasks = ordered(options(scores, "task"), TASK_ORDER)
    task = state.choice(cols[0].selectbox, "Task", "task", tasks, tasks[0] if tasks else None)
    metrics = ordered(options(scores, "metric", task=task), METRIC_ORDER)
    metrics += list(DERIVED) if task in derived_tasks else []
    metric = state.choice(cols[1].selectbox, "Metric", "metric", metrics, moving_metric(scores, task, metrics),
                          help="p_correct: the probability of the right choice among the choices; bpb: bits per "
                          "byte of the right continuation; both from the stored loglikelihoods (documents with "
                          "samples only).")
    stored = "acc" if metric in DERIVED else metric
    shots = [int(s) for s in options(scores[scores.task == task], "shots", metric=stored)]
    shot = state.choice(cols[2].selectbox, "Shots", "shots", shots, 0,
                        format_func=lambda s: f"{s}-shot")
    return task, metric, shot


def moving_metric(scores: pd.DataFrame, task: str, metrics: list[str], preferred: str = "acc") -> str:
    """The metric a view opens on: acc, unless none of the store's own runs' acc curves on this
    task moves over their checkpoints while another metric's does (a small model wrong on every
    LAMBADA word at each checkpoint, as the demo is: its falling perplexity is what it learned)."""
    own = scores[(scores["task"] == task) & (scores["source"] != PUBLISHED)]

    def moves(metric: str) -> bool:
        values = own[own["metric"] == metric].groupby(["model", "source"])["value"].nunique()
        return bool((values > 1).any())

    if own.empty or preferred not in metrics or moves(preferred):
        return preferred
    return next((m for m in metrics if moves(m)), preferred)


def x_axis(cols) -> tuple[str, str]:
    x = state.choice(cols[0].radio, "x axis", "x", ["step", "tokens"], "step", horizontal=True,
                     format_func=lambda v: {"step": "training step", "tokens": "tokens seen"}[v])
    scale = state.choice(cols[1].radio, "x scale", "xscale", ["log", "linear"], "log", horizontal=True,
                         format_func=lambda v: {"log": "log (0 included)", "linear": "linear"}[v])
    return x, scale


def _family_key(family: str) -> tuple:
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family == OTHER, family)


def by_family(rows: pd.DataFrame) -> list[str]:
    """The rows' models grouped by family (Pythia first, 'other' last), by size within one."""
    models = rows.drop_duplicates("model")

    def key(m) -> tuple:
        return _family_key(m.family), pd.isna(m.params), 0 if pd.isna(m.params) else m.params, m.model

    return [str(m.model) for m in sorted(models.itertuples(index=False), key=key)]


def model_label(rows: pd.DataFrame):
    """A picker's format_func: 'Pythia · pythia-70m', the family first."""
    models = rows.drop_duplicates("model")  # not a Python pass over every score row: ~60 ms a page
    family = dict(zip(models["model"], models["family"]))
    return lambda model: f"{family.get(model, OTHER)} · {model}"
