"""The Compare view's paired comparison: any two checkpoints (MODEL@STEP vs MODEL@STEP, from any
sources), task by task on the documents both scored: the numbers `evalsuite compare` prints,
from the same function (stats.paired.compare): counts right, only A, only B, the difference B
minus A with its 95% bootstrap interval, and the exact McNemar p-value (a paired t test for
p_correct and bpb; an unpaired z test from the stderrs where a side has no samples, such as
EleutherAI's published numbers, labelled so).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import pickers, state, stats_data
from dashboard.text import code
from evalsuite.store.metrics import DERIVED
from evalsuite.store.values import Checkpoint

RELEASED = "released"  # the one checkpoint of a model with no training steps (step NULL)
METRICS = ["acc", "acc_norm", *DERIVED]


def _order(step: str) -> int:
    return -1 if step == RELEASED else int(step)


def _step_text(step) -> str:
    return RELEASED if pd.isna(step) else str(int(step))


def _side(scores: pd.DataFrame, name: str, default_model: str, step_index: int, cols) -> Checkpoint:
    """Model, step and source of one side (URL keys a_model, a_step, a_source; b_...)."""
    models = pickers.by_family(scores)
    model = state.choice(cols[0].selectbox, f"{name}: model", f"{name.lower()}_model", models, default_model,
                         format_func=pickers.model_label(scores))
    mine = scores[scores["model"] == model]
    steps = sorted({_step_text(s) for s in mine["step"]}, key=_order)
    own = sorted({_step_text(s) for s in mine.loc[mine["source"] != "published", "step"]}, key=_order) or steps
    step = state.choice(cols[1].selectbox, f"{name}: step", f"{name.lower()}_step", steps,
                        own[step_index] if len(own) >= -step_index else own[-1])
    here = mine[mine["step"].isna()] if step == RELEASED else mine[mine["step"] == int(step)]
    sources = sorted(set(here["source"]))
    source = state.choice(cols[2].selectbox, f"{name}: source", f"{name.lower()}_source", sources,
                          "local" if "local" in sources else sources[0])
    return Checkpoint(model, None if step == RELEASED else int(step), source)


def _defaults(scores: pd.DataFrame) -> str:
    """The model both sides open on: the first one of the user's own (with most checkpoints), else
    the first model."""
    own = scores[scores["source"] != "published"]
    pool = own if len(own) else scores
    counts = pool.groupby("model")["step"].nunique()
    return str(counts.idxmax()) if len(counts) else str(scores["model"].iloc[0])


def render(scores: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Paired comparison of two checkpoints")
    st.caption("Any two checkpoints (two steps, two models, two sources), task by task on the documents both "
               "scored: the numbers `evalsuite compare A B` prints.")
    model = _defaults(scores)
    a = _side(scores, "A", model, -2, st.columns(3))
    b = _side(scores, "B", model, -1, st.columns(3))
    cols = st.columns(3)
    metric = state.choice(cols[0].selectbox, "Metric", "pmetric", METRICS, "acc")
    both = scores[scores["model"].isin([a.model, b.model])]
    shots = state.choice(cols[1].selectbox, "Shots", "pshots", sorted({int(s) for s in both["shots"]}) or [0], 0,
                         format_func=lambda s: f"{s}-shot")
    frame = stats_data.compare(path, a, b, metric, shots)
    shown = f"A = {code(_name(a))}, B = {code(_name(b))}: {code(metric)}, {shots}-shot"
    if frame.empty:
        st.info(f"Nothing to compare: {shown} share no task with samples or stored scores.")
        return frame
    st.markdown(f"{shown}; `diff` is B minus A, with its 95% interval.")
    st.dataframe(frame, hide_index=True, width="stretch", key="paired_table",
                 column_config={"p_value": st.column_config.NumberColumn(format="%.3g")})
    st.caption(_verdict(frame))
    return frame


def _name(point: Checkpoint) -> str:
    return point.model + ("" if point.step is None else f"@{point.step}") + f" ({point.source})"


def _verdict(frame: pd.DataFrame) -> str:
    """One plain sentence: which tasks differ at 0.05, and by which test."""
    real = frame[frame["p_value"] <= 0.05]
    tests = ", ".join(sorted(set(frame["test"])))
    if real.empty:
        return f"No task differs significantly at 0.05 ({tests}; not corrected for testing {len(frame)} tasks)."
    listed = ", ".join(f"{t} ({d:+.4f})" for t, d in zip(real["task"], real["diff"]))
    return (f"Significant at 0.05: {listed} ({tests}; not corrected for testing {len(frame)} tasks). "
            "mcnemar-exact and paired-t use the documents both scored; unpaired-z only the two stderrs.")
