"""Runs: what the store holds (a model x step coverage map), where each run came from, and how a
sweep that is writing to the store right now is progressing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, download, state
from dashboard.data import PUBLISHED, load_models, load_scores, load_sweeps, load_workers, model_info
from dashboard.draw import draw
from dashboard.text import code
from evalsuite.records import Run, columns

SHOWN_RUNS = 500  # the provenance table's rows (latest first); the download holds all
STALLED_FACTOR = 5  # a running sweep silent for 5 checkpoints' time may have been killed
# The provenance table: every column of the runs table, these first.
FIRST = ["run_id", "source", "model", "step", "finished_at", "duration_s"]
PROVENANCE = FIRST + [c for c in columns(Run) if c not in FIRST]


def coverage_cells(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, step): how many tasks are stored there, which, and from which sources."""
    rows = scores.assign(step_label=scores["step"].map(lambda s: "final" if pd.isna(s) else str(int(s))))
    cells = rows.groupby(["model", "step_label"], as_index=False).agg(
        tasks=("task", "nunique"), task_list=("task", lambda t: ", ".join(sorted(set(t)))),
        sources=("source", lambda s: ", ".join(sorted(set(s)))), params=("params", "first"))
    return cells


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Runs")
    _progress(path)
    st.markdown("**Coverage**: tasks stored per model and checkpoint")
    cols = st.columns(2)
    sources = ["all"] + sorted(set(scores["source"]))
    source = state.choice(cols[0].selectbox, "Source", "source", sources, "all")
    shots = state.choice(cols[1].selectbox, "Shots", "shots", sorted(int(s) for s in set(scores["shots"])),
                         0, format_func=lambda s: f"{s}-shot")
    rows = scores if source == "all" else scores[scores["source"] == source]
    cells = coverage_cells(rows[rows["shots"] == shots])
    if cells.empty:
        st.info("Nothing stored for this source and shot count.")
    else:
        draw(st, charts.coverage, cells)
    view = _provenance(runs, source)
    download.offer(view, f"runs_{source}", "runs")
    return view


def _provenance(runs: pd.DataFrame, source: str) -> pd.DataFrame:
    st.markdown("**Provenance** of each run (latest first)")
    view = runs if source == "all" else runs[runs["source"] == source]
    if view.empty:
        st.info("No run recorded for this source.")
        return view
    view = view[[c for c in PROVENANCE if c in view.columns]]
    # a full suite is thousands of runs, half a megabyte for the browser on every opening
    if len(view) > SHOWN_RUNS:
        st.caption(f"The latest {SHOWN_RUNS:,} of {len(view):,} runs; the download below holds every one.")
    st.dataframe(view.head(SHOWN_RUNS), width="stretch", hide_index=True)
    return view


@st.fragment(run_every=5)
def _progress(path: Path) -> None:
    """Re-read every few seconds: a sweep counts each checkpoint it stores in the sweeps table."""
    now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))  # the store keeps naive UTC
    sweeps = load_sweeps(path)
    running = sweeps[sweeps["status"] == "running"]
    if running.empty:
        st.caption(_none_running(now, sweeps))
        return
    st.markdown("**Sweep progress**")
    for sweep in running.itertuples():
        _sweep_bar(now, sweep)
        _workers(path, str(sweep.sweep_id))
    _per_model(path, sorted({m for s in running["models"] for m in s.split(",")}))


def _none_running(now: pd.Timestamp, sweeps: pd.DataFrame) -> str:
    if sweeps.empty:
        return "No sweep running."
    last = sweeps.iloc[0]
    ended = {"done": "finished", "stopped": "stopped"}.get(last["status"]) or code(last["status"])
    return (f"No sweep running. The last one ({code(last['models'])}) {ended} {_ago(now, last['updated_at'])}: "
            f"{last['done']} of {last['planned']} checkpoints.")


def _sweep_bar(now: pd.Timestamp, sweep) -> None:
    done, planned = int(sweep.done), int(sweep.planned)
    text = f"{code(sweep.models)} on {code(sweep.hostname)}: {done} of {planned} checkpoints stored"
    if done:
        per = (sweep.updated_at - sweep.started_at).total_seconds() / done
        text += f", {per:.0f} s each, about {_duration(per * (planned - done))} left"
        waiting = bool(_note(sweep))  # a watch waits for its training run: silence is not a stall
        if not waiting and (now - sweep.updated_at).total_seconds() > max(STALLED_FACTOR * per, 600):
            text += (f"; no checkpoint stored for {_ago(now, sweep.updated_at).removesuffix(' ago')}: "
                     "if it was killed, the same command resumes it")
    st.progress(min(done / max(planned, 1), 1.0), text=text)
    if _note(sweep):
        st.caption(f"{code(sweep.models)}: {code(_note(sweep), limit=300)}")  # what `evalsuite watch` waits for


def _note(sweep) -> str:
    """The note `evalsuite watch` keeps on its sweep ('' for a run, or a store made before notes)."""
    note = getattr(sweep, "note", None)
    return "" if note is None or pd.isna(note) else str(note)


def _workers(path: Path, sweep_id: str) -> None:
    """A Ray sweep's workers: where each runs and the checkpoint it is on (lost ones stay listed).
    A table shows the stored names as data, never as markdown."""
    workers = load_workers(path, sweep_id)
    if workers.empty:
        return
    live = workers[~workers["state"].isin(["lost", "stopped"])]
    st.caption(f"Ray workers: {(live['state'] == 'evaluating').sum()} of {len(live)} busy, "
               f"{(workers['state'] == 'lost').sum()} lost")
    st.dataframe(workers, width="stretch", hide_index=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 120 else (f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h")


def _per_model(path: Path, models: list[str]) -> None:
    """Each model's checkpoints with local scores, out of the checkpoints it has where that is
    known (Pythia's 154; a discovered model's count, kept in the store's models table)."""
    scores, stored = load_scores(path), load_models(path)
    for model in models:
        mine = scores[(scores["model"] == model) & (scores["source"] != PUBLISHED)]
        done = mine["step"].nunique() + int(mine["step"].isna().any())  # a released model's one checkpoint
        total = model_info(model, stored.get(model)).checkpoints
        if total:
            st.progress(min(done / total, 1.0), text=f"{code(model)}: {done} of {total} checkpoints have local scores")
        else:
            st.caption(f"{code(model)}: {done} checkpoints have local scores")


def _ago(now: datetime, then) -> str:
    seconds = max(0, int((pd.Timestamp(now) - pd.Timestamp(then)).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    return f"{seconds // 60} min ago" if seconds < 7200 else f"{seconds // 3600} h ago"
