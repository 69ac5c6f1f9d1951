"""The page chart_cost.py opens: one chart of a dashboard view, as the view sends it (its Vega-Lite
spec and its datasets, read from the file $CHART_COST_FILE names), or a variant of it named by
`?v=` (chart_cost.variants names them), under the floor page's heading and ten-row table.
"""

import os
import pickle

import pandas as pd
import streamlit as st

ROWS = 50  # what the variants that cut rows keep of each dataset


@st.cache_data
def _load(path: str) -> dict:
    with open(path, "rb") as file:
        return pickle.load(file)


def variant(chart: dict, name: str) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(spec, datasets) of one variant of `chart` ({"spec": ..., "datasets": {name: frame}})."""
    spec, frames = dict(chart["spec"]), dict(chart["datasets"])
    if name == "rows":  # every dataset cut to its first rows
        frames = {key: frame.head(ROWS) for key, frame in frames.items()}
    elif name == "unused":  # every dataset sent whole, the chart drawing a copy of its first rows
        frames.update({f"{key}-head": frame.head(ROWS) for key, frame in chart["datasets"].items()})
        spec = _heads(spec)
    elif name.startswith("without-"):  # one layer left out
        left_out = int(name.removeprefix("without-"))
        spec["layer"] = [layer for i, layer in enumerate(spec["layer"]) if i != left_out]
    elif name == "tiny":
        spec = {"mark": "line", "data": {"name": "tiny"},
                "encoding": {"x": {"field": "n", "type": "quantitative"}, "y": {"field": "n", "type": "quantitative"}}}
        frames = {"tiny": pd.DataFrame({"n": range(10)})}
    return spec, frames


def _heads(view: dict) -> dict:
    """`view` (a single or a layered spec) naming each dataset's "-head" copy instead."""
    out = dict(view)
    if "name" in out.get("data", {}):
        out["data"] = {"name": out["data"]["name"] + "-head"}
    if "layer" in out:
        out["layer"] = [_heads(layer) for layer in out["layer"]]
    return out


def main() -> None:
    st.set_page_config(page_title="chart cost", layout="wide")
    st.subheader("A heading, one small table and one chart")
    st.dataframe(pd.DataFrame({"n": range(10)}))
    spec, frames = variant(_load(os.environ["CHART_COST_FILE"]), st.query_params.get("v", "full"))
    st.vega_lite_chart(spec={**spec, "datasets": frames}, width="stretch")


if __name__ == "__main__":  # Streamlit runs this file as __main__; the tests import `variant`
    main()
