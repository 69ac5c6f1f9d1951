"""dashboard/draw.py: a chart's Vega-Lite spec is built once per distinct arguments (by value),
keeps every row of its data as a frame (Altair's default stops at 5,000), and shares a frame the
layers have in common."""

from __future__ import annotations

import altair as alt
import pandas as pd
import pytest

from dashboard import draw

BUILT: list[int] = []


def _curve(rows: pd.DataFrame, title: str) -> alt.LayerChart:
    BUILT.append(len(rows))
    base = alt.Chart(rows)
    return alt.layer(base.mark_line().encode(x="x:Q", y="y:Q"), base.mark_point().encode(x="x:Q", y="y:Q"),
                     alt.Chart(rows.head(2)).mark_rule().encode(y="y:Q")).properties(title=title)


@pytest.fixture(autouse=True)
def _fresh():
    draw.spec.clear()
    BUILT.clear()


def _frame(n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [i * 0.5 + shift for i in range(n)]})


def test_every_row_is_kept_and_a_shared_frame_sent_once():
    out = draw.spec("curve", _curve, _frame(7316), "seven thousand")  # an Items heat map page's runs
    sizes = sorted(len(frame) for frame in out["datasets"].values())
    assert sizes == [2, 7316]  # the line and the points share one dataset; the rule has its own
    assert out["title"] == "seven thousand" and "config" not in out  # no Altair default theme
    line, points, _ = (layer["data"]["name"] for layer in out["layer"])
    assert line == points and out["datasets"][line]["y"].tolist() == _frame(7316)["y"].tolist()


def test_a_chart_is_built_once_per_distinct_arguments():
    first = draw.spec("curve", _curve, _frame(10), "a")
    again = draw.spec("curve", _curve, _frame(10), "a")  # equal values, new objects: cached
    assert BUILT == [10] and again["datasets"].keys() == first["datasets"].keys()
    moved = draw.spec("curve", _curve, _frame(10, shift=1.0), "a")  # one value differs: built again
    renamed = draw.spec("curve", _curve, _frame(10), "b")
    assert BUILT == [10, 10, 10]
    name = moved["layer"][0]["data"]["name"]
    assert moved["datasets"][name]["y"].iloc[0] == 1.0 and renamed["title"] == "b"
