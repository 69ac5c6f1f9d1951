"""Download of what a view shows: the exact rows behind its chart or table, as CSV and JSON."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard.data import CACHE_TTL_S

# Internal plotting columns are dropped; everything a reader needs to cite a number stays.
_DROP = {"low", "high", "series", "family_source"}


def export_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c not in _DROP]].reset_index(drop=True)


def to_csv(frame: pd.DataFrame) -> bytes:
    return export_frame(frame).to_csv(index=False).encode()


def to_json(frame: pd.DataFrame) -> bytes:
    # pandas writes NaN/NA as null and timestamps as ISO strings; a list of records is easy to load.
    # Written by pandas in one pass: a round trip through the json module took ~0.15 s of every
    # opening of a page at full scale (3,000 rows).
    return export_frame(frame).to_json(orient="records", date_format="iso", indent=1).encode()


@dataclass(frozen=True)
class Files:
    csv: bytes
    json: bytes


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def files(frame: pd.DataFrame) -> Files:
    """Both files, cached on the rows' values: a page writes them on every opening (the buttons
    carry them), and writing a training curve's 2,896 rows took ~60 ms of each (py-spy), where
    hashing them to find the files already written takes a few."""
    return Files(to_csv(frame), to_json(frame))


def offer(frame: pd.DataFrame, name: str, key: str) -> None:
    """Two buttons, CSV and JSON, for the rows of the current view."""
    written = files(frame)
    left, right, _ = st.columns([1, 1, 4])
    left.download_button("Download CSV", written.csv, f"{name}.csv", "text/csv",
                         key=f"{key}_csv", disabled=frame.empty)
    right.download_button("Download JSON", written.json, f"{name}.json", "application/json",
                          key=f"{key}_json", disabled=frame.empty)
