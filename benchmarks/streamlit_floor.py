"""The least a page can be: a heading and one small table, served by bench_items.py as
`evalsuite dashboard` serves the app (dashboard/launch.py's command). The time until it is drawn
is what opening any page costs on the machine before a view's own content (Streamlit's scripts,
its websocket, a first render): the floor under issue 18's 2 s, measured in the same run as the
dashboard's pages.

    streamlit run benchmarks/streamlit_floor.py
"""

import pandas as pd
import streamlit as st

st.set_page_config(page_title="floor", layout="wide")
st.subheader("A heading and one small table")
st.dataframe(pd.DataFrame({"n": range(10)}))
