"""Every chart reaches the page through `draw`: a builder (charts.py, item_charts.py) and its
arguments in, the chart on the page; the Vega-Lite spec it makes is cached on those arguments.

Why: Altair builds each chart as a tree of schema objects in Python and walks it again to write
the spec (to_dict); at full scale (benchmarks/bench_items.py's store) that was most of a page's
script time, e.g. about 0.3 s of the Items page and more of Scaling's five charts, spent again on
every opening and every rerun of a page that draws the same chart. A cached spec is served as
st.vega_lite_chart: the same element st.altair_chart makes, the data sent as Arrow as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S

# Altair's theme and data transformer are process-wide settings, and every browser tab is a
# thread of this process.
_ALTAIR = threading.Lock()
_KEEP = "evalsuite_frames"  # the data transformer below, registered with Altair at the end


def draw(where, build: Callable[..., alt.TopLevelMixin], *args, width: str = "stretch", **kwargs) -> None:
    """Draw `build(*args, **kwargs)` in `where` (st, a column, a container)."""
    name = f"{build.__module__}.{build.__qualname__}"
    where.vega_lite_chart(spec=spec(name, build, *args, **kwargs), width=width)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)  # a page draws at most six
def spec(name: str, _build: Callable[..., alt.TopLevelMixin], *args, **kwargs) -> dict:
    """The chart's Vega-Lite spec, its datasets as frames (Streamlit sends them as Arrow); cached on
    the builder's `name` and the arguments' values (Streamlit does not hash a function)."""
    chart = _build(*args, **kwargs)
    datasets: dict[str, pd.DataFrame] = {}
    # as st.altair_chart does: no fixed 300 px default view, and the frames kept as they are (Altair's
    # default would write every row as JSON, and refuse more than 5,000). Not checked against
    # Vega-Lite's JSON schema here: that was about 0.2 s of the Scaling view's first opening at
    # full scale; the tests check every chart of every page they open instead (conftest.assert_clean).
    with _ALTAIR, alt.theme.enable("none"), alt.data_transformers.enable(_KEEP, datasets=datasets):
        out = chart.to_dict(validate=False)
    out["datasets"] = datasets
    return out


def _keep(data: pd.DataFrame, datasets: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Altair's data transformer: the frame set aside under a name the spec refers to."""
    name = next((n for n, frame in datasets.items() if frame is data), f"data-{len(datasets)}")
    datasets[name] = data
    return {"name": name}


alt.data_transformers.register(_KEEP, _keep)  # type: ignore[arg-type]  # our charts pass frames only
