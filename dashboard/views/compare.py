"""Local vs published: the user's own evaluations beside EleutherAI's numbers for the same checkpoints,
or beside another source's (results imported from another lab, for any model); below it, the
paired comparison of any two checkpoints (views/paired.py).

A difference is flagged when it exceeds the combined standard error of the two numbers
(sqrt(se_local^2 + se_published^2)). Two unbiased evaluations of the same checkpoint differ by
more than that about a third of the time, so a flag is a prompt to look, not a verdict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, download, pickers, state
from dashboard.data import PUBLISHED, pick, representative
from dashboard.draw import draw
from dashboard.text import code, codes
from dashboard.views import paired

KEYS = ["model", "step", "task", "metric", "shots"]
SHOWN_ROWS = 500  # the table shows the rows that differ most; the download holds all (see _table)


def differences(scores: pd.DataFrame, mine: str, reference: str = PUBLISHED) -> pd.DataFrame:
    """Every score stored by both sources, with the difference and whether it exceeds one stderr."""
    cols = KEYS + ["value", "stderr", "n", "doc_limit", "run_id"]
    a = representative(scores[scores["source"] == mine])[cols]
    b = representative(scores[scores["source"] == reference])[KEYS + ["value", "stderr", "n"]]
    both = a.merge(b, on=KEYS, suffixes=("_local", "_published"))
    both["diff"] = both["value_local"] - both["value_published"]
    se = (both["stderr_local"].astype(float) ** 2 + both["stderr_published"].astype(float) ** 2).pow(0.5)
    both["combined_stderr"] = se
    both["diff_in_stderr"] = both["diff"] / se.replace(0, np.nan)
    both["flag"] = both["diff"].abs() > se
    first = KEYS + ["value_local", "value_published", "diff", "combined_stderr", "diff_in_stderr", "flag"]
    both = both[first + [c for c in both.columns if c not in first]]
    return both.sort_values("diff_in_stderr", key=lambda s: -s.abs(), na_position="last").reset_index(drop=True)


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    table = _sources(scores)
    paired.render(scores, path)
    return table


def _sources(scores: pd.DataFrame) -> pd.DataFrame:
    """Every score stored by one source beside another's: the overlay, the flagged table."""
    st.subheader("Local vs published")
    sources = sorted(set(scores["source"]) - {PUBLISHED})
    if not sources:
        st.info("Nothing to compare: the store has no run of your own yet "
                "(`evalsuite run --model pythia-70m --steps final --limit 200`).")
        return scores.iloc[0:0]
    mine = state.choice(st.sidebar.selectbox, "Compare source", "source", sources,
                        "local" if "local" in sources else sources[0])
    others = sorted(set(scores["source"]) - {mine})  # published, or another lab's or run's numbers
    if not others:
        st.info(f"Nothing to compare {code(mine)} with: the store holds no other source (EleutherAI's "
                "published numbers, or results imported with `evalsuite import PATH --source NAME`).")
        return scores.iloc[0:0]
    reference = state.choice(st.sidebar.selectbox, "Against source", "against", others,
                             PUBLISHED if PUBLISHED in others else others[0])
    table = differences(scores, mine, reference)
    if table.empty:
        own = codes(sorted(set(scores.loc[scores["source"] == mine, "model"]))[:20])
        st.info(f"None of the checkpoints in source {code(mine)} ({own}) has a counterpart in {code(reference)} "
                "(same model, step, task, metric and shots). Published checkpoints are steps 0, 1, 2, "
                "4 ... 512, 1000, 3000, 13000, 23000 ... 143000; e.g. "
                "`evalsuite run --model pythia-70m --steps 143000 --limit 200`.")
        return table
    _overlay(scores, table, mine, reference)
    _table(table, mine, reference)
    download.offer(table, f"compare_{mine}_vs_{reference}", "compare")
    return table


def _overlay(scores: pd.DataFrame, table: pd.DataFrame, mine: str, reference: str) -> None:
    shared = scores[scores["model"].isin(set(table["model"]))]
    task, metric, shots = pickers.task_metric_shots(shared[shared["source"] == mine])
    ref = pick(shared[shared["source"] == reference], task, metric, shots)
    own = pick(shared[shared["source"] == mine], task, metric, shots)
    if own.empty:
        st.info("No run of yours for this task, metric and shot count.")
        return
    x, scale = pickers.x_axis(st.columns(2))
    title = f"{task} {metric}, {shots}-shot: {reference} (lines) vs {mine} (diamonds)"
    draw(st, charts.comparison, ref, own, metric, x, scale, metric == "perplexity", title)


def _table(table: pd.DataFrame, mine: str, reference: str) -> None:
    flagged = int(table["flag"].sum())
    st.markdown(f"**{len(table)}** scores stored by both; **{flagged}** differ by more than one "
                "combined stderr (by chance alone about a third would).")
    shown = table.head(SHOWN_ROWS).rename(
        columns=lambda c: c.replace("_local", f" ({mine})").replace("_published", f" ({reference})"))
    # A full sweep's thousands of rows were half a megabyte for the browser on every opening, and
    # colouring the flagged rows (pandas' Styler) sends a style for every cell; the table is sorted
    # by how far apart the two numbers are, so its first rows are the ones to look at.
    if len(table) > SHOWN_ROWS:
        st.caption(f"The {SHOWN_ROWS:,} that differ most, in combined stderrs, of {len(table):,}; the download "
                   "below holds every row.")
    st.dataframe(shown, width="stretch", hide_index=True,
                 column_config={"flag": st.column_config.CheckboxColumn("flag", help="differs by more than one "
                                                                        "combined stderr")})

