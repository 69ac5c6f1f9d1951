"""Training curves' statistics (issue 18): for one curve the user picks, its 95% interval band
(per-document bootstrap where samples exist, stderr otherwise) and markers at the changes between
consecutive evaluated checkpoints that are significant after Holm's or Benjamini-Hochberg's
correction (stats/curve.py, as `evalsuite compare` tests two checkpoints); and, for every curve
drawn, an optional smoothed one (checkpoint averaging over a window of evaluated steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import pickers, stat_charts, state, stats_data
from dashboard.data import PUBLISHED
from dashboard.text import code
from evalsuite.stats import curve
from evalsuite.store.items import METRICS as CURVE_METRICS
from evalsuite.store.items import ItemsKey

NONE = "none"
CORRECTIONS = {"holm": "Holm (family-wise)", "bh": "Benjamini-Hochberg (false discovery rate)"}
SHORT = {"holm": "Holm's", "bh": "Benjamini-Hochberg's"}


@dataclass(frozen=True)
class Picked:
    series: str  # 'model|source', or NONE
    correction: str
    window: int  # 0: no smoothing


@dataclass
class Layers:
    """What the chart gets on top of its curves, and what the caption says about it."""

    picked: Picked
    intervals: pd.DataFrame | None = None
    changes: pd.DataFrame | None = None
    smoothed: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def draw(self, xenc) -> list:
        out = []
        if self.intervals is not None and len(self.intervals):
            out.append(stat_charts.interval_band(self.intervals, xenc))
        if self.smoothed is not None and len(self.smoothed):
            out.append(stat_charts.smoothed_lines(self.smoothed, xenc, self.picked.window))
        if self.changes is not None:
            marked = self.changes[self.changes["significant"].astype(bool)]
            if len(marked):
                out.append(stat_charts.change_markers(marked, xenc))
        return out


def _series(rows: pd.DataFrame) -> list[str]:
    """Every drawn curve as 'model|source': the user's own first, those with a change to test
    (two checkpoints or more) before single points, then by family and size."""
    keys = rows.drop_duplicates(["model", "source"])
    order = {m: i for i, m in enumerate(pickers.by_family(rows))}
    points = rows.groupby(["model", "source"])["step"].nunique().to_dict()
    ordered = sorted(keys.itertuples(index=False),
                     key=lambda r: (r.source == PUBLISHED, points[(r.model, r.source)] < 2, order[str(r.model)],
                                    str(r.source)))
    return [f"{r.model}|{r.source}" for r in ordered]


def _label(key: str) -> str:
    if key == NONE:
        return "none"
    model, source = key.split("|", 1)
    return model if source == PUBLISHED else f"{model} ({source})"


def controls(rows: pd.DataFrame, metric: str) -> Picked:
    """The pickers: whose curve gets the band and markers (own runs first), the correction, smoothing."""
    cols = st.columns([3, 3, 2, 2])
    series = _series(rows) if metric in CURVE_METRICS else []
    chosen = state.choice(cols[0].selectbox, "Significance and 95% band for", "sig", [NONE, *series],
                          series[0] if series else NONE, format_func=_label,
                          help="Markers: changes between consecutive evaluated checkpoints that are significant "
                          "after the correction; band: 95% interval (per-document bootstrap where samples "
                          "exist, else 1.96 stderr).")
    correction = state.choice(cols[1].radio, "Correction for testing every change", "correction",
                              list(CORRECTIONS), "holm", format_func=CORRECTIONS.get, horizontal=True)
    smooth = state.flag(cols[2].checkbox, "smoothed curves", "smooth", False,
                        help="Checkpoint averaging: each point the mean of the last N evaluated checkpoints.")
    window = state.choice(cols[3].selectbox, "window (checkpoints)", "window", [2, 3, 4, 5, 8, 10], curve.WINDOW,
                          disabled=not smooth)
    return Picked(chosen, correction, window if smooth else 0)


def layers(path: Path, rows: pd.DataFrame, picked: Picked, task: str, metric: str, shots: int, x: str) -> Layers:
    """The band, markers and smoothed curves for the picked settings, with x (step or tokens)."""
    out = Layers(picked)
    if picked.window:
        out.smoothed = _smoothed(rows, picked.window)
    if picked.series == NONE or metric not in CURVE_METRICS:
        if metric not in CURVE_METRICS:
            out.notes.append(f"Significance markers and bootstrap bands are for {', '.join(CURVE_METRICS)}.")
        return out
    model, source = picked.series.split("|", 1)
    key = ItemsKey(model, task, shots, metric, source)
    mine = rows[(rows["model"] == model) & (rows["source"] == source)]
    tokens = mine.set_index("step")["tokens"]
    tokens = tokens[~tokens.index.duplicated()]
    # the curve's own columns on every row: a tooltip names it, and the layer's rows are its points
    own = {"model": model, "source": source, "variant": mine["variant"].iloc[0], "size": mine["size"].iloc[0],
           "task": task, "metric": metric, "shots": shots}
    both = stats_data.curve_stats(path, key, picked.correction)
    out.intervals = _with_tokens(both.intervals, tokens).assign(**own)
    out.changes = _with_tokens(both.changes, tokens).assign(**own)
    out.notes.append(_summary(out, model, source))
    return out


def _with_tokens(frame: pd.DataFrame, tokens: pd.Series) -> pd.DataFrame:
    """Plain float columns (Vega) and tokens seen at each step, for a tokens x axis."""
    frame = frame.copy()
    frame["tokens"] = frame["step"].map(tokens).astype("float64")
    for column in ("step", "step_before", "n", "n_docs"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _smoothed(rows: pd.DataFrame, window: int) -> pd.DataFrame:
    parts = [curve.smoothed(group, window) for _, group in rows.groupby(["model", "source"], sort=False)]
    frame = pd.concat(parts, ignore_index=True)
    frame["series"] = [m if s == PUBLISHED else f"{m} ({s})" for m, s in zip(frame["model"], frame["source"])]
    for column in ("step", "tokens"):
        frame[column] = frame[column].astype("float64")
    return frame[["model", "source", "series", "size", "step", "tokens", "smoothed", "smoothed_points"]]


def _summary(out: Layers, model: str, source: str) -> str:
    changes, intervals = out.changes, out.intervals
    assert changes is not None and intervals is not None
    marked = int(changes["significant"].astype(bool).sum())
    boot = int((intervals["interval"] == "bootstrap").sum())
    band = (f"per-document bootstrap at {boot} of {len(intervals)} checkpoints" if boot
            else "1.96 stderr of the stored scores (no per-document samples)")
    name = model if source == PUBLISHED else f"{model} ({source})"
    return (f"{code(name)}: {marked} of {len(changes)} changes between consecutive evaluated checkpoints are "
            f"significant after {SHORT[out.picked.correction]} correction at 0.05 (triangles: up green, "
            f"down red); grey band: 95% interval, {band}.")


def explain(out: Layers) -> None:
    for note in out.notes:
        st.caption(note)
    if out.picked.window:
        st.caption(f"Thick lines: smoothed, each point the mean of the last {out.picked.window} evaluated "
                   "checkpoints (fewer at the start of a curve).")
    if out.changes is not None and len(out.changes):
        with st.expander("Changes between consecutive checkpoints (every test)"):
            st.dataframe(out.changes.drop(columns=["tokens"]), hide_index=True, width="stretch")
