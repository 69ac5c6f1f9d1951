"""The dashboard's Altair charts: training curves, scaling curves, local-vs-published, coverage
(the Items view's are in item_charts.py).

Each builder takes the already-picked rows (one per model x step x source) and returns a chart;
none of them reads the store. Step 0 is a real checkpoint (the untrained model), so the log step
axis is a symmetric-log scale, linear around 0 and logarithmic beyond step 1, and its title says
so rather than silently shifting steps by one.
"""

from __future__ import annotations

from typing import Protocol

import altair as alt
import pandas as pd

from dashboard import stat_charts
from dashboard.data import series_label

STEP_TICKS = [0, 1, 10, 100, 1_000, 10_000, 100_000]
TOKEN_TICKS = [0, 1e7, 1e8, 1e9, 1e10, 1e11]
PARAM_TICKS = [1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10, 3e10, 1e11]
FAMILY_COLORS = {"Pythia": "#1f77b4", "Pythia (deduped)": "#ff7f0e", "OPT": "#2ca02c",
                 "BLOOM": "#d62728", "PolyPythias": "#17becf"}
HEIGHT = 380
AnyChart = alt.Chart | alt.LayerChart | alt.FacetChart  # what the builders below return
_TOKENS_LABEL = ("datum.value >= 1e9 ? format(datum.value / 1e9, '~g') + 'B' : "
                 "datum.value >= 1e6 ? format(datum.value / 1e6, '~g') + 'M' : format(datum.value, '~g')")
_PARAMS_LABEL = _TOKENS_LABEL
_STEPS_LABEL = "datum.value >= 1000 ? format(datum.value / 1000, '~g') + 'k' : format(datum.value, '~g')"


class Extra(Protocol):
    """More layers for a training chart, built on its x encoding (significance.Layers). Passed as
    data, not as a function: draw.py caches a chart on its builder's arguments, by value."""

    def draw(self, xenc: alt.X) -> list: ...


def _x_encoding(x: str, scale: str, data: pd.DataFrame | None = None) -> alt.X:
    if x == "tokens":
        # linear up to the first checkpoint's tokens (one step's worth: Pythia's 2,097,152)
        seen = data["tokens"][data["tokens"] > 0] if data is not None else pd.Series([], dtype=float)
        title, constant = "tokens seen", float(seen.min()) if len(seen) else 1.0
        axis = alt.Axis(values=TOKEN_TICKS, labelExpr=_TOKENS_LABEL)
    else:
        title, constant = "training step", 1
        axis = alt.Axis(values=STEP_TICKS, labelExpr=_STEPS_LABEL)
    if scale == "log":
        # symlog: 0 stays at 0, everything past the first step is spaced logarithmically
        return alt.X(f"{x}:Q", title=f"{title} (symmetric log scale: 0 included)",
                     scale=alt.Scale(type="symlog", constant=constant), axis=axis)
    return alt.X(f"{x}:Q", title=f"{title} (linear)",
                 axis=alt.Axis(labelExpr=_TOKENS_LABEL if x == "tokens" else _STEPS_LABEL))


def _y_encoding(metric: str, log_y: bool, field: str = "value") -> alt.Y:
    scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    return alt.Y(f"{field}:Q", title=metric + (" (log scale)" if log_y else ""), scale=scale)


def _with_bounds(rows: pd.DataFrame, log_y: bool) -> pd.DataFrame:
    rows = rows.copy()
    err = rows["stderr"].fillna(0.0)
    rows["low"] = rows["value"] - err
    rows["high"] = rows["value"] + err
    if log_y:  # a band reaching below zero cannot be drawn on a log axis
        rows["low"] = rows["low"].where(rows["low"] > 0, rows["value"] * 0.5)
    return rows


# What a curve's layers draw or show on hover: every other column of the scores (dtype, lm-eval
# version, timestamps ...) would only be sent to the browser and turned into objects there.
CURVE_COLUMNS = ["model", "source", "family", "size", "variant", "params", "task", "metric", "shots", "step",
                 "tokens", "value", "stderr", "n", "doc_limit", "run_id"]


def chart_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns a curve uses (CURVE_COLUMNS), in plain dtypes (nullable ints break Vega), plus a
    series label per model and source."""
    out = rows[[c for c in CURVE_COLUMNS if c in rows.columns]].copy()
    for col in ("step", "tokens", "params", "n", "doc_limit", "shots"):
        if col in out:
            out[col] = out[col].astype("float64")
    out["series"] = [series_label(m, s) for m, s in zip(out["model"], out["source"])]
    return out


def _size_order(rows: pd.DataFrame) -> list[str]:
    ordered = rows.sort_values("params", na_position="last")
    return list(dict.fromkeys(ordered["size"]))


def training(rows: pd.DataFrame, metric: str, x: str = "step", scale: str = "log",
             bands: bool = True, log_y: bool = False, title: str = "",
             reference: pd.DataFrame | None = None,
             extra: Extra | None = None) -> AnyChart:
    """Metric vs step (or tokens), one line per model and source; stderr as a shaded band;
    `reference`: released models (no steps), each a labelled horizontal line; `extra`: more
    layers (stat_charts.py's), built on this chart's x encoding."""
    data = _with_bounds(chart_frame(rows), log_y)
    order = _size_order(data)
    data = data.drop(columns=["family", "params", "doc_limit"])
    xenc = _x_encoding(x, scale, data)
    # symbolOpacity: the legend would otherwise borrow the faint stderr band's opacity
    # the scale's domain orders the legend; a `sort` as well would make Vega compute a sort key per row
    color = alt.Color("size:N", title="model size", scale=alt.Scale(scheme="tableau10", domain=order),
                      legend=alt.Legend(symbolOpacity=1))
    dash = alt.StrokeDash("variant:N", title="training data",
                          scale=alt.Scale(domain=["standard", "deduped"], range=[[1, 0], [5, 3]]))
    tooltip = ["model", "source", "step", "tokens", alt.Tooltip("value:Q", format=".4f"),
               alt.Tooltip("stderr:Q", format=".4f"), "n", "run_id"]
    base = alt.Chart(data)
    lines = base.mark_line(strokeWidth=1.8).encode(xenc, _y_encoding(metric, log_y), color, dash,
                                                   detail="series:N")
    points = base.mark_point(size=28, filled=True).encode(
        xenc, _y_encoding(metric, log_y), color, alt.Shape("source:N", title="source"),
        detail="series:N", tooltip=tooltip)
    layers = [lines, points]
    if bands:
        band = base.mark_area(opacity=0.15).encode(xenc, alt.Y("low:Q"), alt.Y2("high:Q"), color,
                                                   detail="series:N")
        layers.insert(0, band)
    if reference is not None and not reference.empty:
        layers += _reference_lines(chart_frame(reference), metric, log_y)
    layers += extra.draw(xenc) if extra else []
    return alt.layer(*layers).properties(title=title, height=HEIGHT + 140).interactive()


def _reference_lines(rows: pd.DataFrame, metric: str, log_y: bool) -> list[alt.Chart]:
    """A released model's score across the whole x axis, labelled at the left edge."""
    yenc = _y_encoding(metric, log_y)
    tooltip = ["series", "source", alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("stderr:Q", format=".4f")]
    base = alt.Chart(rows)
    rules = base.mark_rule(strokeDash=[6, 4], color="#555", strokeWidth=1.2).encode(yenc, tooltip=tooltip)
    labels = base.mark_text(align="left", dx=4, dy=-6, fontSize=10, color="#555").encode(
        yenc, x=alt.value(0), text="series:N")
    return [rules, labels]


def scaling(rows: pd.DataFrame, metric: str, title: str = "", log_y: bool = False,
            compact: bool = False, fit_band: pd.DataFrame | None = None) -> AnyChart:
    """Metric vs parameter count (log), one line per family, stderr as error bars; `fit_band`: a
    scaling fit drawn under them (stat_charts.fit_layers)."""
    data = _with_bounds(chart_frame(rows), log_y)
    data["family_source"] = [f if s == "published" else f"{f} ({s})"
                             for f, s in zip(data["family"], data["source"])]
    present = set(data["family_source"])
    families = [f for f in FAMILY_COLORS if f in present] + sorted(present - set(FAMILY_COLORS))
    legend = alt.Legend(orient="bottom", columns=3, title=None) if compact else alt.Legend()
    color = alt.Color("family_source:N", title="family", sort=families, legend=legend,
                      scale=alt.Scale(domain=families,
                                      range=[FAMILY_COLORS.get(f, _extra(i)) for i, f in enumerate(families)]))
    xenc = alt.X("params:Q", title="parameters (log scale)", scale=alt.Scale(type="log", nice=False),
                 axis=alt.Axis(values=PARAM_TICKS, labelExpr=_PARAMS_LABEL))
    yenc = _y_encoding(metric, log_y)
    tooltip = ["model", "family", "source", "step", alt.Tooltip("params:Q", format=","),
               alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("stderr:Q", format=".4f"), "n"]
    base = alt.Chart(data)
    lines = base.mark_line().encode(xenc, yenc, color, detail="family_source:N")
    points = base.mark_point(filled=True, size=45).encode(xenc, yenc, color, tooltip=tooltip)
    bars = base.mark_rule().encode(xenc, alt.Y("low:Q"), alt.Y2("high:Q"), color)
    # the user's own checkpoints sit on top of the published ones: make them stand out
    own = alt.Chart(data[data["source"] != "published"]).mark_point(
        shape="diamond", size=110, filled=True, stroke="black", strokeWidth=0.8).encode(
        xenc, yenc, color, tooltip=tooltip)
    height = 340 if compact else HEIGHT
    more = stat_charts.fit_layers(fit_band, xenc) if fit_band is not None else []
    return alt.layer(*more, bars, lines, points, own).properties(title=title, height=height)


def _extra(i: int) -> str:
    return ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"][i % 6]


def comparison(reference: pd.DataFrame, mine: pd.DataFrame, metric: str, x: str = "step",
               scale: str = "log", log_y: bool = False, title: str = "") -> AnyChart:
    """Published curves (lines, bands) with the user's checkpoints on top (points, error bars)."""
    ref = _with_bounds(chart_frame(reference), log_y)
    own = _with_bounds(chart_frame(mine), log_y)
    xenc = _x_encoding(x, scale, pd.concat([ref, own]))
    color = alt.Color("model:N", title="model", legend=alt.Legend(symbolOpacity=1))
    yenc = _y_encoding(metric, log_y)
    tooltip = ["model", "source", "step", alt.Tooltip("value:Q", format=".4f"),
               alt.Tooltip("stderr:Q", format=".4f"), "n", "doc_limit", "run_id"]
    ref_base, own_base = alt.Chart(ref), alt.Chart(own)
    layers = [
        ref_base.mark_area(opacity=0.12).encode(xenc, alt.Y("low:Q"), alt.Y2("high:Q"), color),
        ref_base.mark_line(strokeWidth=1.5).encode(xenc, yenc, color, tooltip=tooltip),
        own_base.mark_rule(strokeWidth=2).encode(xenc, alt.Y("low:Q"), alt.Y2("high:Q"), color),
        own_base.mark_point(shape="diamond", size=90, filled=True, stroke="black", strokeWidth=0.8)
        .encode(xenc, yenc, color, tooltip=tooltip),
    ]
    return alt.layer(*layers).properties(title=title, height=HEIGHT).interactive()


def coverage(cells: pd.DataFrame) -> alt.Chart:
    """Heat map: model (rows) x step (columns), colour = how many tasks are stored there."""
    models = list(dict.fromkeys(cells.sort_values(["params", "model"], na_position="last")["model"]))
    steps = sorted(cells["step_label"].unique(), key=_step_key)
    return alt.Chart(cells).mark_rect().encode(
        alt.X("step_label:O", title="step", sort=steps, axis=alt.Axis(labelAngle=-90, labelOverlap=False)),
        alt.Y("model:N", title=None, sort=models, axis=alt.Axis(labelOverlap=False, labelLimit=180)),
        alt.Color("tasks:Q", title="tasks stored", scale=alt.Scale(scheme="blues", domainMin=0),
                  legend=alt.Legend(format="d", tickMinStep=1)),
        tooltip=["model", "step_label", "tasks", "task_list", "sources"],
    ).properties(height=max(120, 24 * len(models) + 70))


def _step_key(label: str) -> float:
    return float("inf") if label == "final" else float(label)
