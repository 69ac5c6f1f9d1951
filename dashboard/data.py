"""What the dashboard reads: the store's scores and runs, as pandas frames, plus what is known about
each model (the store's models table, else the built-in catalog: never models.yaml);
and for the Items view, the per-document statistics store/items.py computes in DuckDB (only what
the view shows: never every sample).

The store is only ever opened read-only, through evalsuite.store.read_df (which retries while a
sweep holds the write lock); a page's queries share one opening for that page's run (app.py,
store.held). Results are cached keyed on the file's (and its
write-ahead log's) size and modification time, which every commit changes, so rows a running sweep
commits show up on the next rerun, and otherwise every session (every browser tab, every link
opened) shares them: at full scale (benchmarks/bench_items.py's store) recomputing a page's queries
for each opening took most of its time. The TTL only bounds how long an unused entry is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.text import code
from evalsuite import store
from evalsuite.catalog.entries import builtin_catalog
from evalsuite.errors import EvalsuiteError
from evalsuite.records import Model
from evalsuite.store import items

CACHE_TTL_S = 3600  # the file stamp in each key invalidates an entry at once on a commit
PUBLISHED = "published"
OTHER = "other"


@dataclass(frozen=True)
class ModelInfo:
    family: str  # 'Pythia', 'Pythia (deduped)', 'PolyPythias', 'OPT', 'BLOOM', a store's own, or 'other'
    params: int | None  # None: unknown size (the demo model, an imported model nothing sizes)
    size: str  # legend label shared by a model and its deduped twin: '70m', '2.8b', 'demo'
    tokens_per_step: int | None = None  # None: tokens seen are unknown (curves use steps)
    checkpoints: int | None = None  # how many checkpoints the model has, where known


FAMILY_NAMES = {"pythia": "Pythia", "pythia-deduped": "Pythia (deduped)", "polypythias": "PolyPythias",
                "opt": "OPT", "bloom": "BLOOM"}


def family_label(family: str) -> str:
    return FAMILY_NAMES.get(family, family)


def model_info(name: str, stored: Model | None = None) -> ModelInfo:
    """Family, size and tokens per step of a model: from what the store keeps about it (its
    models table), else the built-in catalog (which ships with the package: the dashboard needs
    no models.yaml); a model neither knows is family 'other', of unknown size."""
    spec = builtin_catalog().get(name)
    known = stored or (spec.record() if spec else None)
    size = name.removeprefix("pythia-").removesuffix("-deduped")
    if known is None:
        return ModelInfo(OTHER, None, size)
    return ModelInfo(family_label(known.family), known.params, size, known.tokens_per_step, known.checkpoints)


def file_stamp(path: Path) -> tuple:
    """Changes whenever DuckDB commits to the file (or its write-ahead log)."""
    stamp: list[tuple[int, int] | None] = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
            stamp.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def load_scores(path: Path) -> pd.DataFrame:
    """Every stored score, with family/params/size/variant columns."""
    return _load_scores(str(path), file_stamp(path))


def load_models(path: Path) -> dict[str, Model]:
    """What the store keeps about each model (empty for a store made before models were kept)."""
    return _load_models(str(path), file_stamp(path))


def load_runs(path: Path) -> pd.DataFrame:
    """Every run's provenance, latest first."""
    return _load_runs(str(path), file_stamp(path))


def load_sweeps(path: Path) -> pd.DataFrame:
    """Sweeps started on this store, latest first (empty for a store made before sweeps were kept)."""
    return store.read_df(path, "SELECT * FROM sweeps ORDER BY started_at DESC", needs="sweeps",
                         columns=("sweep_id", "models", "planned", "done", "status", "started_at",
                                  "updated_at", "hostname"))


def load_workers(path: Path, sweep_id: str) -> pd.DataFrame:
    """A Ray sweep's workers as its driver last recorded them (empty for a local sweep, or a store
    made before workers were kept)."""
    return store.read_df(path, "SELECT worker, state, node, gpu, pid, model, step, done, updated_at "
                               "FROM workers WHERE sweep_id = ? ORDER BY worker", [sweep_id], needs="workers")


# The stamp is part of the cache key, so a commit by a sweep invalidates the cache at once.
@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _load_scores(path: str, stamp: tuple) -> pd.DataFrame:
    frame = store.read_df(Path(path), *store.scores_with_representative())
    return add_model_columns(frame, _load_models(path, stamp))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _load_models(path: str, stamp: tuple) -> dict[str, Model]:
    return store.known_models(Path(path))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _load_runs(path: str, stamp: tuple) -> pd.DataFrame:
    return store.read_df(Path(path), "SELECT * FROM runs ORDER BY finished_at DESC NULLS LAST")


def add_model_columns(frame: pd.DataFrame, stored: dict[str, Model] | None = None) -> pd.DataFrame:
    """family, params, size, variant and tokens per model (`stored`: the store's models table).

    Tokens seen are the step times the model's tokens per step where that is known; else the
    row's own (an OLMo-style revision's count), trusted only from a store that keeps models:
    older versions wrote Pythia's 2,097,152 tokens a step for every model, and its migration
    clears those (store/seed.seed_models)."""
    stored = stored or {}
    infos = {name: model_info(name, stored.get(name)) for name in frame["model"].unique()}
    frame = frame.copy()
    frame["family"] = frame["model"].map(lambda n: infos[n].family)
    frame["params"] = frame["model"].map(lambda n: infos[n].params).astype("Float64")
    frame["size"] = frame["model"].map(lambda n: infos[n].size)
    frame["variant"] = frame["family"].map(lambda f: "deduped" if "deduped" in f else "standard")
    per_step = frame["model"].map(lambda n: infos[n].tokens_per_step).astype("Float64")
    derived = frame["step"].astype("Float64") * per_step
    own = (frame["tokens"] if "tokens" in frame else pd.Series(pd.NA, index=frame.index)).astype("Float64")
    frame["tokens"] = derived.fillna(own) if stored else derived
    return frame


def load(path: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str | None]:
    """(scores, runs, None), or (None, None, a helpful sentence) when there is nothing to show."""
    fill = ("Fill it with `evalsuite run` (the tiny demo model), `evalsuite run --model pythia-70m "
            "--steps final` or `evalsuite import PATH` (lm-eval result files).")
    if not path.exists():
        return None, None, f"No store at {code(path)} yet. {fill}"
    try:
        scores, runs = load_scores(path), load_runs(path)
    except EvalsuiteError as exc:  # store.connect names the problem: corrupt, not DuckDB, ...
        return None, None, f"Cannot read the store: {code(exc, limit=1000)}"
    except Exception as exc:  # a file that is not DuckDB, or a DuckDB file without our tables
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, None, f"{code(path)} is not an evalsuite store ({code(f'{type(exc).__name__}: {first}')})"
    if scores.empty:
        return None, None, f"The store at {code(path)} holds no scores yet. {fill}"
    return scores, runs, None


def pick(scores: pd.DataFrame, task: str, metric: str, shots: int) -> pd.DataFrame:
    """One row per (model, step, source) for a task/metric/shots: the one the store's query
    marked as standing for its checkpoint (store.scores_with_representative)."""
    rows = scores[(scores.task == task) & (scores.metric == metric) & (scores.shots == shots)]
    return representative(rows).sort_values(["params", "model", "step"], na_position="last").reset_index(drop=True)


def representative(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that stand for their checkpoint (model, step, source, task, metric, shots): several
    runs can cover one (a --limit trial, then the full set; an imported file beside the shipped
    published one), and the store's query decided which one counts."""
    return rows[rows["representative"]].drop(columns="representative")


def series_label(row_model: str, row_source: str) -> str:
    return row_model if row_source == PUBLISHED else f"{row_model} ({row_source})"


def options(scores: pd.DataFrame, column: str, **where) -> list:
    """Distinct values of a column among rows matching `where` (column=value)."""
    rows = scores
    for col, value in where.items():
        rows = rows[rows[col] == value]
    values = rows[column].dropna().unique().tolist()
    return sorted(values)


# The Items view's queries (store/items.py), by name: each takes (path, *args), most an ItemsKey first.
ITEM_QUERIES: dict[str, Callable[..., pd.DataFrame]] = {
    "stats": items.item_stats, "cells": items.item_cells, "history": items.item_history,
    "by_scale": items.by_scale, "right_by_scale": items.right_by_scale,
    "documents_of": items.documents_of, "prompt_ends_of": items.prompt_ends_of, "flips_by_task": items.flips_by_task}


def item_query(path: Path, name: str, *args) -> pd.DataFrame:
    """One of ITEM_QUERIES, cached until the store changes (lists in `args` as tuples)."""
    frozen = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    return _item_query(str(path), file_stamp(path), name, frozen)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=64)
def _item_query(path: str, stamp: tuple, name: str, args: tuple) -> pd.DataFrame:
    return ITEM_QUERIES[name](Path(path), *(list(a) if isinstance(a, tuple) else a for a in args))
