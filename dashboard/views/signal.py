"""Signal and noise: which task and metric separate a family's models more than a model's score
wobbles between its last checkpoints (Heineman et al. 2025). The table `evalsuite stats` prints,
from the same functions (stats/signal.py): on a new store EleutherAI's published Pythia numbers,
on a store with its own runs those too, with p_correct and bpb (from the samples) beside acc.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import state, stats_data
from dashboard.text import code
from evalsuite.stats.signal import LAST, METRICS

ALL = "all"


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Signal and noise")
    cols = st.columns([2, 2, 2, 4])
    sources = [ALL, *sorted(set(scores["source"]))]
    source = state.choice(cols[0].selectbox, "Source", "source", sources, ALL,
                          format_func=lambda s: "every source" if s == ALL else s)
    shots = state.choice(cols[1].selectbox, "Shots", "shots", sorted({int(s) for s in scores["shots"]}), 0,
                         format_func=lambda s: f"{s}-shot")
    last = state.choice(cols[2].selectbox, "Noise over the last N checkpoints", "last", [2, 3, 4, 5, 8, 10, 20], LAST)
    metrics = state.multi("Metrics", "metrics", list(METRICS), list(METRICS), container=cols[3])
    if not metrics:
        st.info("Pick at least one metric.")
        return scores.iloc[0:0]
    frame = stats_data.signal_noise(path, tuple(metrics), None if source == ALL else source, shots, last)
    if frame.empty:
        st.info(f"No stored scores for {code(source)} at {shots}-shot with these metrics.")
        return frame
    st.dataframe(frame, hide_index=True, width="stretch", key="signal_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3g") for c in ("signal", "noise")}
                 | {"snr": st.column_config.NumberColumn(format="%.1f")})
    _best(frame)
    st.caption(f"**signal**: (max - min) / mean of a family's models' scores at `step`, the last step every one "
               f"of them has; **noise**: std / mean of each model's score over its last {last} evaluated "
               "checkpoints, averaged over the family (empty for models with one checkpoint, such as OPT and "
               "BLOOM); **snr** = signal / noise, higher is a more reliable ranking of model sizes. "
               "Heineman et al. 2025, arXiv:2508.13144; `evalsuite stats` prints the same.")
    return frame


def _best(frame: pd.DataFrame) -> None:
    """Per family and source, the task and metric with the highest signal-to-noise ratio."""
    ranked = frame.dropna(subset=["snr"])
    if ranked.empty:
        return
    best = ranked.loc[ranked.groupby(["source", "family"])["snr"].idxmax()]
    lines = [f"{code(r.family)} ({code(r.source)}): {code(r.task)} by {code(r.metric)}, snr {r.snr:.1f}"
             for r in best.itertuples()]
    st.markdown("**Most reliable signal**: " + "; ".join(lines))
