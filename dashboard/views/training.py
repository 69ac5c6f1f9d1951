"""Training curves: a metric against training step (or tokens seen), one line per model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, download, pickers, state
from dashboard.data import pick
from dashboard.text import code

VARIANTS = {"both": "standard + deduped", "standard": "standard only", "deduped": "deduped only"}


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Training curves")
    curves = scores[scores["step"].notna()]  # OPT/BLOOM have one final checkpoint: no curve
    if curves.empty:
        st.info("No model in the store has more than a final checkpoint, so there is no training curve "
                "to draw. Run `evalsuite run` or `evalsuite import` for Pythia checkpoints.")
        return curves
    task, metric, shots = pickers.task_metric_shots(curves)
    rows = pick(curves, task, metric, shots)
    cols = st.columns([2, 2, 2, 1])
    x, scale = pickers.x_axis(cols)
    variant = state.choice(cols[2].radio, "Training data", "variant", list(VARIANTS), "both",
                           horizontal=True, format_func=VARIANTS.get)
    bands = state.flag(cols[3].checkbox, "stderr bands", "bands", True)
    if variant != "both":
        rows = rows[rows["variant"] == variant]
    rows = _model_filter(rows)
    if rows.empty:
        st.info("Nothing stored for this selection. Pick another task, shot count or model.")
        return rows
    log_y = metric == "perplexity"
    title = f"{task} {metric}, {shots}-shot"
    st.altair_chart(charts.training(rows, metric, x, scale, bands, log_y, title), width="stretch")
    _notes(rows, log_y)
    download.offer(rows, f"training_{task}_{metric}_{shots}shot", "training")
    return rows


def _model_filter(rows: pd.DataFrame) -> pd.DataFrame:
    ordered = rows.sort_values("params", na_position="last")
    models = list(dict.fromkeys(ordered["model"]))
    chosen = state.multi("Models", "models", models, models, container=st.sidebar,
                         help="Which models to draw (the link remembers the choice).")
    return rows[rows["model"].isin(chosen)]


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
