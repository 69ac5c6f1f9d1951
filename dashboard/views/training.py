"""Training curves: a metric against training step (or tokens seen), one line per model; released
models (no training steps: OPT, BLOOM, an imported released model) as horizontal reference lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, download, pickers, significance, state, stats_data
from dashboard.data import PUBLISHED, pick
from dashboard.draw import draw
from dashboard.text import code, codes
from dashboard.views.items import candidates
from evalsuite.store.metrics import DERIVED

VARIANTS = {"both": "standard + deduped", "standard": "standard only", "deduped": "deduped only"}


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Training curves")
    curves = scores[scores["step"].notna()]
    if curves.empty:
        st.info("No model in the store has checkpoints with a training step, so there is no training curve "
                "to draw. Run `evalsuite run --model pythia-70m --steps published --limit 200`, or `evalsuite "
                "run --model NAME --model-path DIR` for your own run's checkpoints.")
        return curves
    task, metric, shots = pickers.task_metric_shots(curves, derived_tasks=_sampled_tasks(curves))
    rows = _rows(path, curves, task, metric, shots)
    cols = st.columns([2, 2, 2, 1])
    x, scale = pickers.x_axis(cols)
    variant = state.choice(cols[2].radio, "Training data", "variant", list(VARIANTS), "both",
                           horizontal=True, format_func=VARIANTS.get)
    bands = state.flag(cols[3].checkbox, "stderr bands", "bands", True)
    if variant != "both":
        rows = rows[rows["variant"] == variant]
    rows = _model_filter(rows)
    if rows.empty:
        st.info("Nothing stored for this selection. Pick another task, shot count or model."
                + (f" {metric} is computed from per-document samples, and none are stored for this task."
                   if metric in DERIVED else ""))
        return rows
    x = _x_known(rows, x)
    reference = _reference(scores, task, metric, shots) if metric not in DERIVED else scores.iloc[0:0]
    log_y = metric == "perplexity"
    picked = significance.controls(rows, metric)
    title = f"{task} {metric}, {shots}-shot" + (f"; thick lines: smoothed over {picked.window} checkpoints"
                                                if picked.window else "")
    layers = significance.layers(path, rows, picked, task, metric, shots, x)
    draw(st, charts.training, rows, metric, x, scale, bands, log_y, title, reference, layers)
    significance.explain(layers)
    _notes(rows, log_y)
    download.offer(pd.concat([rows, reference], ignore_index=True), f"training_{task}_{metric}_{shots}shot",
                   "training")
    return rows


def _sampled_tasks(curves: pd.DataFrame) -> set[str]:
    """Tasks whose scores may come with per-document samples (not the shipped published ones)."""
    return set(candidates(curves)["task"].unique())  # unique first: iterating Arrow strings is slow


def _rows(path: Path, curves: pd.DataFrame, task: str, metric: str, shots: int) -> pd.DataFrame:
    """One row per checkpoint and source: the stored scores, or p_correct / bpb from the samples."""
    if metric not in DERIVED:
        return pick(curves, task, metric, shots)
    rows = stats_data.derived_scores(path, metric, task, shots)
    return rows.sort_values(["params", "model", "step"], na_position="last").reset_index(drop=True)


def _model_filter(rows: pd.DataFrame) -> pd.DataFrame:
    models = pickers.by_family(rows)
    chosen = state.multi("Models", "models", models, models, container=st.sidebar,
                         format_func=pickers.model_label(rows),
                         help="Which models to draw, grouped by family (the link remembers the choice).")
    return rows[rows["model"].isin(chosen)]


def _x_known(rows: pd.DataFrame, x: str) -> str:
    """Tokens on the x axis only where every drawn series knows them; else steps, and why."""
    if x != "tokens":
        return x
    unknown = sorted(set(rows.loc[rows["tokens"].isna(), "model"]))
    if not unknown:
        st.caption("x axis: tokens seen (each model's steps times its tokens per step, or as its "
                   "checkpoints' names say).")
        return x
    st.caption(f"x axis: training steps, not tokens: tokens seen are not known for {codes(unknown[:10])} "
               "(`evalsuite run --tokens-per-step N`, or `tokens_per_step` in models.yaml, records them).")
    return "step"


def _reference(scores: pd.DataFrame, task: str, metric: str, shots: int) -> pd.DataFrame:
    """Released models' scores for this task, metric and shots, picked in the sidebar (the user's
    own by default; EleutherAI's OPT and BLOOM baselines on request)."""
    released = pick(scores[scores["step"].isna()], task, metric, shots)
    if released.empty:
        return released
    labels = {f"{m}|{s}": (m if s == PUBLISHED else f"{m} ({s})")
              for m, s in zip(released["model"], released["source"])}
    keys = list(labels)
    mine = [k for k in keys if not k.endswith(f"|{PUBLISHED}")]
    chosen = state.multi("Released models (reference lines)", "reference", keys, mine, container=st.sidebar,
                         format_func=labels.get,
                         help="Models with one released checkpoint and no training steps, drawn as horizontal lines.")
    key = released["model"] + "|" + released["source"]
    return released[key.isin(chosen)]


def _notes(rows: pd.DataFrame, log_y: bool) -> None:
    notes = []
    per_series = rows.groupby(["model", "source"])["step"].nunique()
    single = [f"{code(m)} ({code(s)})" for m, s in per_series[per_series == 1].index]
    if single:
        notes.append(f"Only one checkpoint stored for {', '.join(single)}: drawn as a point, not a line.")
    limited = rows[rows["doc_limit"].notna()]
    if not limited.empty:
        notes.append(f"{limited['model'].nunique()} model(s) include runs on a subset of documents "
                     "(--limit): wider stderr, and not exactly comparable with full-set numbers.")
    if log_y:
        notes.append("Perplexity is drawn on a log scale (lower is better).")
    for note in notes:
        st.caption(note)
