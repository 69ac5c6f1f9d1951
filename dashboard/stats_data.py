"""What the dashboard reads for its statistics: the same functions `evalsuite compare` and
`evalsuite stats` call (evalsuite/stats/), each cached until the store changes (data.file_stamp),
so a rerun of the page (a picker moved) does not recompute them.

- a training curve's intervals and significant changes (stats/curve.py), for one model, task,
  metric, shot count and source (an ItemsKey);
- p_correct and bpb at every checkpoint with samples (store/values.py), shaped as the scores;
- the paired comparison of two checkpoints (stats/paired.compare);
- noise, signal and their ratio (stats/signal.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S, add_model_columns, file_stamp, load_models
from evalsuite.stats import curve, paired, signal
from evalsuite.store.items import ItemsKey
from evalsuite.store.values import Checkpoint, checkpoint_scores


def curve_stats(path: Path, key: ItemsKey, correction: str) -> curve.CurveStats:
    """Each checkpoint's value and 95% interval (bootstrap where samples exist, else stderr), and
    each pair of consecutive checkpoints tested, corrected by `correction` (holm or bh)."""
    return _curve_stats(str(path), file_stamp(path), key, correction)


def derived_scores(path: Path, metric: str, task: str, shots: int) -> pd.DataFrame:
    """A derived metric (p_correct, bpb) at every checkpoint with samples of the task, shaped as
    data.load_scores' rows (each one standing for its checkpoint)."""
    return _derived(str(path), file_stamp(path), metric, task, shots)


def compare(path: Path, a: Checkpoint, b: Checkpoint, metric: str, shots: int) -> pd.DataFrame:
    """stats.paired.compare: A against B, one row per task (what `evalsuite compare` prints)."""
    return _compare(str(path), file_stamp(path), a, b, metric, shots)


def signal_noise(path: Path, metrics: tuple[str, ...], source: str | None, shots: int | None,
                 last: int) -> pd.DataFrame:
    """stats.signal: noise, signal and snr per source, family, task, metric and shots (what
    `evalsuite stats` prints)."""
    return _signal_noise(str(path), file_stamp(path), metrics, source, shots, last)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=64)
def _curve_stats(path: str, stamp: tuple, key: ItemsKey, correction: str) -> curve.CurveStats:
    return curve.intervals_and_changes(Path(path), key, correction)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def _derived(path: str, stamp: tuple, metric: str, task: str, shots: int) -> pd.DataFrame:
    rows = checkpoint_scores(Path(path), metric, tasks=[task], shots=shots)
    rows = rows[rows["step"].notna()]
    return add_model_columns(rows, load_models(Path(path)))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=32)
def _compare(path: str, stamp: tuple, a: Checkpoint, b: Checkpoint, metric: str, shots: int) -> pd.DataFrame:
    return paired.compare(Path(path), a, b, metric, shots)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def _signal_noise(path: str, stamp: tuple, metrics: tuple[str, ...], source: str | None, shots: int | None,
                  last: int) -> pd.DataFrame:
    scores = signal.family_scores(Path(path), list(metrics), source=source, shots=shots, last=last)
    return signal.signal_noise(scores, last)
