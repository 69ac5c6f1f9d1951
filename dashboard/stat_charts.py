"""The statistics' chart layers, drawn over charts.py's curves: a training curve's 95% interval
band and its significant changes (markers), checkpoint-averaged (smoothed) curves, and a scaling
fit with its bootstrap band. Each takes frames already computed (dashboard/stats_data.py) and the
x encoding of the chart it joins; none reads the store.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

SIGNIFICANT = alt.Scale(domain=["up", "down"], range=["#1a9850", "#d73027"])
FIT_COLOR = "#444"


def interval_band(frame: pd.DataFrame, xenc: alt.X) -> alt.Chart:
    """One series' 95% interval at each checkpoint (ci_low, ci_high), a grey band."""
    tooltip = ["step", alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("ci_low:Q", format=".4f"),
               alt.Tooltip("ci_high:Q", format=".4f"), "n", "interval"]
    return alt.Chart(frame).mark_area(opacity=0.28, color="#666").encode(
        xenc, alt.Y("ci_low:Q"), alt.Y2("ci_high:Q"), tooltip=tooltip)


def change_markers(frame: pd.DataFrame, xenc: alt.X, yfield: str = "value") -> alt.Chart:
    """A triangle at each significant change (at the later checkpoint): up green, down red."""
    data = frame.assign(direction=["up" if d > 0 else "down" for d in frame["diff"]],
                        shape=["triangle-up" if d > 0 else "triangle-down" for d in frame["diff"]])
    tooltip = [alt.Tooltip("step_before:Q", title="from step"), alt.Tooltip("step:Q", title="to step"),
               alt.Tooltip("diff:Q", format="+.4f"), alt.Tooltip("p_value:Q", format=".3g"),
               alt.Tooltip("p_adjusted:Q", format=".3g"), "test", "n_docs"]
    return alt.Chart(data).mark_point(filled=True, size=150, stroke="black", strokeWidth=0.7, opacity=1).encode(
        xenc, alt.Y(f"{yfield}:Q"), alt.Shape("shape:N", scale=None, legend=None),
        alt.Fill("direction:N", title="significant change", scale=SIGNIFICANT), tooltip=tooltip)


def smoothed_lines(frame: pd.DataFrame, xenc: alt.X, window: int) -> alt.Chart:
    """Each series averaged over its last `window` evaluated checkpoints: thick lines."""
    data = frame.assign(curve=f"smoothed: mean of the last {window} evaluated checkpoints")
    tooltip = ["model", "source", "step", alt.Tooltip("smoothed:Q", format=".4f"), "smoothed_points", "curve"]
    return alt.Chart(data).mark_line(strokeWidth=4, opacity=0.55).encode(
        xenc, alt.Y("smoothed:Q"), alt.Color("size:N", legend=None), detail="series:N", tooltip=tooltip)


def fit_layers(band: pd.DataFrame, xenc: alt.X) -> list[alt.Chart]:
    """A scaling fit (x: parameters, predicted) with its bootstrap band (low, high), dashed grey."""
    tooltip = [alt.Tooltip("params:Q", format=".3s"), alt.Tooltip("predicted:Q", format=".4f"),
               alt.Tooltip("low:Q", format=".4f"), alt.Tooltip("high:Q", format=".4f"), "fit"]
    base = alt.Chart(band)
    area = base.mark_area(opacity=0.15, color=FIT_COLOR).encode(xenc, alt.Y("low:Q"), alt.Y2("high:Q"))
    line = base.mark_line(strokeDash=[6, 3], color=FIT_COLOR, strokeWidth=2).encode(
        xenc, alt.Y("predicted:Q"), tooltip=tooltip)
    return [area, line]
