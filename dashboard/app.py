"""The evalsuite dashboard: `evalsuite dashboard`, or `streamlit run dashboard/app.py` from
the project root (where .streamlit/config.toml keeps it on 127.0.0.1, this machine only).

Reads the DuckDB store named by $EVALSUITE_DB (default results/evalsuite.duckdb) read-only, so it
can stay open while a sweep writes to the same file. The sidebar picks one of six views; every
picker's value is mirrored in the URL, so a link reopens the same view.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from dashboard import data, state
from dashboard.text import code
from dashboard.views import compare, items, runs, scaling, signal, training
from evalsuite import store

VIEWS = {"training": ("Training curves", training), "scaling": ("Scaling curves", scaling),
         "compare": ("Local vs published", compare), "items": ("Items", items),
         "signal": ("Signal and noise", signal), "runs": ("Runs", runs)}
DEFAULT_VIEW = "training"  # served at "/"


def main() -> None:
    st.set_page_config(page_title="evalsuite: Pythia evaluations", layout="wide")
    state.begin()
    path = store.db_path(None)
    pages = {name: st.Page(functools.partial(_page, name, path), title=title, url_path=name,
                           default=name == DEFAULT_VIEW) for name, (title, _) in VIEWS.items()}
    current = st.navigation(list(pages.values()), position="hidden")  # the page the URL's path names
    _follow_the_path(next(name for name, page in pages.items() if page is current))
    with st.sidebar:
        st.title("evalsuite")
        view = state.choice(st.radio, "View", "view", list(VIEWS), DEFAULT_VIEW,
                            format_func=lambda v: VIEWS[v][0])
    if pages[view] is not current:
        # The sidebar, or a link's ?view= (every link shared so far has the view there, at "/"),
        # picked another page: Streamlit's router goes there, the link's other settings kept.
        st.switch_page(pages[view], query_params={**st.query_params.to_dict(), "view": view})
    current.run()
    with st.sidebar:
        st.caption(f"Store: {code(path)} (read-only; new rows appear within seconds)")
        st.caption("The address bar holds this view's settings: copy it to share the view.")
    state.write_url()


def _follow_the_path(here: str) -> None:
    """The sidebar's view follows the URL's path where the browser moved (a typed or bookmarked
    /runs, Back, Forward); a new session's ?view= (every link shared so far) still wins."""
    if "_page" not in st.session_state:
        if "view" not in st.query_params:
            st.session_state["view"] = here
    elif st.session_state["_page"] != here:
        st.session_state["view"] = here
    st.session_state["_page"] = here


def _header(scores, run_rows) -> None:
    local = scores.loc[scores["source"] != data.PUBLISHED, "run_id"]  # the one column, not every one
    st.caption(f"{len(scores):,} scores, {scores['model'].nunique()} models, {len(run_rows):,} runs "
               f"({local.nunique():,} not from the published set)")


def _page(view: str, path: Path) -> None:
    with store.held(path):  # the page's queries share one open store: held for this run only
        scores, run_rows, problem = data.load(path)
        if problem:
            st.info(problem)
            return
        _header(scores, run_rows)
        title, module = VIEWS[view]
        try:
            module.render(scores, run_rows, path)
        except Exception as exc:  # a view must never take the page down; say what broke instead
            st.error(f"The {title} view failed on this store: "
                     f"{code(f'{type(exc).__name__}: {exc}', limit=1000)}. "
                     "Other views may still work; please report this with the URL.")


if __name__ == "__main__":  # Streamlit runs this file as __main__; serve.py only imports it
    main()
