"""Items: which documents each checkpoint of a model gets right, and when each one is learned.

For one model, task, shot count and source: a heat map of documents x checkpoints (right or
wrong, documents ordered by when each was learned), how learning times and flips are spread, and
a table of the heat map's documents (the download holds all); one picked from it, or any
document by id, shows its prompt and choices, each choice's
loglikelihood over training, and which model sizes get it right at their last checkpoint. The
numbers are `evalsuite items`' (store/items.py); the view reads only what it draws.

A document is shown once picked (a row, the selector, or `doc=` in the link), not the first one
by default: its text, its table and three charts were a third of what the browser drew on every
opening at full scale (issue 18: every view within 2 s), for a document nobody had asked about.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, download, item_charts, pickers, state
from dashboard.draw import draw
from dashboard.text import code
from evalsuite.io.items import mixed_texts_note
from evalsuite.store.items import ItemsKey
from evalsuite.store.metrics import DERIVED
from evalsuite.store.seed import shipped_run_ids

NO_VALUE = "none"
_SHOWN_TASK = "_items_task"  # the task this view last showed in this session
HEAT_ROWS = 200  # documents in the heat map: 200 x 154 checkpoints is 30,800 cells
SPREAD = "spread"
HOW_TO_GET = (
    "A sweep stores every document's outcome: `evalsuite run --model pythia-160m --steps published` "
    "(or `evalsuite run` for the demo model); so does `evalsuite import` of lm-eval output written "
    "with `--log_samples`.")
PICK_ONE = ("Pick a row of the table (or a document by id above) to see its prompt and choices, each "
            "choice's loglikelihood over training, and which model sizes get it right.")
NO_SAMPLES = ("This store holds no per-document samples, only aggregate scores (EleutherAI's published "
              "numbers are aggregates). " + HOW_TO_GET)


def candidates(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores whose runs may hold samples: not the shipped published ones, accuracies, with a step."""
    return scores[~scores["run_id"].isin(shipped_run_ids()) & scores["metric"].isin(["acc", "acc_norm"])
                  & scores["step"].notna()]  # one pass over the frame's columns, not two


def ordered(stats: pd.DataFrame) -> pd.DataFrame:
    """Documents by when they were learned (never last), then fewer flips, then doc_id."""
    return stats.sort_values(["learned_at", "flips", "doc_id"], na_position="last").reset_index(drop=True)


def render(scores: pd.DataFrame, runs: pd.DataFrame, path: Path) -> pd.DataFrame:
    st.subheader("Items: which documents each checkpoint gets right")
    rows = candidates(scores)
    if rows.empty:
        st.info(NO_SAMPLES)
        return rows
    key = _pick(path, rows)
    stats = data.item_query(path, "stats", key)
    if stats.empty:
        st.info(f"No per-document samples of {code(key.model)} on {code(key.task)} ({key.shots}-shot, "
                f"{code(key.metric)}) from source {code(key.source)}: its scores were imported without "
                "lm-eval's samples files. " + HOW_TO_GET)
        return stats
    mixed = int(stats["mixed_texts"].sum())  # said above the table, not a column of it (nor of the download)
    table = ordered(stats.drop(columns="mixed_texts").merge(data.item_query(path, "right_by_scale", key),
                                                            on="doc_id", how="left"))
    steps = _summary(path, key, table, mixed)
    listed = _heat_map(path, key, table, steps)
    left, right = st.columns(2)
    if table["learned_at"].notna().any():
        draw(left, item_charts.learned_histogram, table["learned_at"], steps)
    else:
        left.info(f"No document was learned: all {len(table):,} are wrong at the last checkpoint, so there is "
                  "no learning time to draw.")
    if table["flips"].gt(0).any():
        draw(right, item_charts.flips_histogram, table["flips"])
    else:
        right.info(f"No document flipped: each of the {len(table):,} is right at every checkpoint or wrong "
                   "at every one, so there is no spread of flips to draw.")
    doc_id = _document_table(path, key, table, listed)
    if doc_id is None:
        st.caption(PICK_ONE)
    else:
        _document(path, key, doc_id, table, steps)
    download.offer(table, f"items_{key.model}_{key.task}_{key.metric}_{key.shots}shot", "items")
    return table


def _pick(path: Path, rows: pd.DataFrame) -> ItemsKey:
    cols = st.columns([3, 2, 1, 2, 2, 2])
    models = pickers.by_family(rows)
    model = state.choice(cols[0].selectbox, "Model", "model", models, models[0], format_func=pickers.model_label(rows))
    mine = rows[rows["model"] == model]
    tasks = pickers.ordered(sorted(set(mine["task"])), pickers.TASK_ORDER)
    # The view opens on the task with most flips, whatever task another view had picked; finding
    # it costs a pass over the model's samples, so not where the link names the task or this view
    # has shown one already; the task is always in the link, so a link reopens the same one.
    if st.query_params.get("task") not in tasks and st.session_state.get(_SHOWN_TASK) not in tasks:
        st.session_state["task"] = _most_flips(path, mine, tasks)
    task = state.choice(cols[1].selectbox, "Task", "task", tasks, tasks[0], always=True,
                        help="Opens on the task whose documents change most between checkpoints.")
    st.session_state[_SHOWN_TASK] = task
    mine = mine[mine["task"] == task]
    shots = state.choice(cols[2].selectbox, "Shots", "shots", sorted(int(s) for s in set(mine["shots"])), 0,
                         format_func=lambda s: f"{s}-shot")
    mine = mine[mine["shots"] == shots]
    sources = sorted(set(mine["source"]))
    source = state.choice(cols[3].selectbox, "Source", "source", sources, "local")
    has_norm = "acc_norm" in set(mine.loc[mine["source"] == source, "metric"])
    norm = has_norm and state.flag(cols[4].toggle, "acc_norm", "norm", False,
                                   help="Right by acc_norm (each choice's loglikelihood divided by its "
                                   "length) instead of acc.")
    value = state.choice(cols[5].selectbox, "Continuous value", "value", [NO_VALUE, *DERIVED], NO_VALUE,
                         help="p_correct (the right choice's probability among the choices) or bpb (bits per "
                         "byte of the right continuation) at each document's last checkpoint, from the stored "
                         "loglikelihoods; right and wrong stay acc's.")
    if value != NO_VALUE:
        return ItemsKey(model, task, shots, value, source)
    return ItemsKey(model, task, shots, "acc_norm" if norm else "acc", source)


def _most_flips(path: Path, mine: pd.DataFrame, tasks: list[str]) -> str:
    """The default task: the one where this model's documents flip most between checkpoints
    (zero-shot, from the source the picker opens on), not the first in the list: a task where
    nothing changes (every document wrong throughout) shows an empty story."""
    sources = sorted(set(mine["source"]))
    source = "local" if "local" in sources else sources[0]
    flips = data.item_query(path, "flips_by_task", str(mine["model"].iloc[0]), 0, source)
    flips = flips[flips["task"].isin(tasks) & (flips["flips"] > 0)]
    return str(flips["task"].iloc[0]) if len(flips) else tasks[0]


def _summary(path: Path, key: ItemsKey, table: pd.DataFrame, mixed: int) -> list[int]:
    """Four numbers over every document, and a warning where `mixed` doc_ids were scored on more
    than one text; returns the evaluated steps, in order."""
    cells = data.item_query(path, "cells", key, _heat_docs(table, SPREAD))
    steps = sorted(set(cells["step"].astype(int)) | set(table["learned_at"].dropna().astype(int)))
    n, learned = len(table), table["learned_at"].notna()
    again = learned & (table["flips"] >= 2)  # right at the end, and it went right, wrong, right
    tiles = st.columns(4)
    tiles[0].metric("Learned for good", f"{learned.mean():.0%}", help="Right from some checkpoint to the last.")
    tiles[1].metric("Wrong at the last checkpoint", f"{(~learned).sum():,}")
    tiles[2].metric("Median flips", f"{table['flips'].median():g}")
    tiles[3].metric("Learned, forgotten, learned again", f"{again.sum():,}",
                    help="Learned for good after at least two changes between right and wrong.")
    if mixed:
        st.warning(mixed_texts_note(mixed) + ".")
    st.caption(f"{n:,} documents of {code(key.task)} x {len(steps)} checkpoints of {code(key.model)} "
               f"(steps {steps[0]} to {steps[-1]}), source {code(key.source)}, right by "
               f"{code('acc_norm' if key.metric == 'acc_norm' else 'acc')}, {key.shots}-shot"
               + (f"; {code('final_' + key.metric)}: its value at each document's last checkpoint."
                  if key.metric in DERIVED else "."))
    return steps


def _heat_docs(table: pd.DataFrame, shown: str) -> list[int]:
    """The heat map's documents: an even spread over the whole order, or one page of it."""
    ids = table["doc_id"].astype(int).tolist()
    if shown == SPREAD:
        count = min(len(ids), HEAT_ROWS)
        return [ids[i * len(ids) // count] for i in range(count)]
    page = int(shown)
    return ids[page * HEAT_ROWS:(page + 1) * HEAT_ROWS]


def _heat_map(path: Path, key: ItemsKey, table: pd.DataFrame, steps: list[int]) -> list[int]:
    """The heat map of the documents picked below it (a spread, or a page); returns their ids."""
    n = len(table)
    pages = [SPREAD] + [str(p) for p in range(-(-n // HEAT_ROWS))] if n > HEAT_ROWS else [SPREAD]
    shown = state.choice(st.selectbox, "Documents in the heat map", "docs", pages, SPREAD,
                         format_func=lambda p: (f"an even spread of {min(n, HEAT_ROWS)} of all {n:,}"
                                                if p == SPREAD else
                                                f"{int(p) * HEAT_ROWS + 1:,} to {min(n, (int(p) + 1) * HEAT_ROWS):,}"
                                                " in learning order"))
    doc_ids = _heat_docs(table, shown)
    cells = data.item_query(path, "cells", key, doc_ids)
    draw(st, item_charts.item_heatmap, cells, doc_ids, steps)
    return doc_ids


def _document_table(path: Path, key: ItemsKey, table: pd.DataFrame, listed: list[int]) -> int | None:
    """The heat map's documents, a row each; picking a row (or any document in the selector below)
    shows that document; None until one is picked. Not every document: LAMBADA's 5,153 rows and
    their labels in the selector were a megabyte for the browser on every opening; the download
    holds them all."""
    st.markdown(f"**Documents** in the heat map, {len(listed):,} of {len(table):,} (pick a row, or any "
                "document below; the download holds all of them)")
    ends = data.item_query(path, "prompt_ends_of", key)
    rows = table.set_index("doc_id", drop=False).loc[listed].reset_index(drop=True)
    shown = rows.merge(ends, on="doc_id", how="left") if not ends.empty else rows.assign(prompt_end=None)
    ids = rows["doc_id"].astype(int).tolist()
    st.dataframe(shown, hide_index=True, width="stretch", height=280, key="items_table",
                 on_select=functools.partial(_picked_row, ids), selection_mode="single-row",
                 column_config={"right": st.column_config.NumberColumn("sizes right", help="models right at "
                                                                        "their last checkpoint"),
                                "models": st.column_config.NumberColumn("sizes"),
                                "prompt_end": st.column_config.TextColumn("prompt (end)")})
    every = table["doc_id"].astype(int).tolist()  # by id alone: the table and the header below say the rest
    return state.choice(st.selectbox, "Document", "doc", [None, *every], None,
                        format_func=lambda d: "none yet: pick a row, or type an id" if d is None else str(d))


def _picked_row(ids: list[int]) -> None:
    rows = st.session_state["items_table"].selection.rows
    if rows and rows[0] < len(ids):
        st.session_state["doc"] = ids[rows[0]]


def _learned(learned_at) -> str:
    return "not learned (wrong at its last checkpoint)" if pd.isna(learned_at) else f"learned at step {int(learned_at)}"


def _document(path: Path, key: ItemsKey, doc_id: int, table: pd.DataFrame, steps: list[int]) -> None:
    history = data.item_query(path, "history", key, doc_id)
    stored = data.item_query(path, "documents_of", key, [doc_id])
    row = table[table["doc_id"] == doc_id].iloc[0].to_dict()
    st.markdown(f"**Document {code(doc_id)}** of {code(key.task)}: {_learned(row['learned_at'])}, "
                f"{int(row['flips'])} flips over {int(row['steps'])} checkpoints")
    n = len(history["loglikelihoods"].iloc[-1])
    target = 0 if n == 1 else _target(history)  # LAMBADA: its one continuation is the right word
    text, curves = st.columns([2, 3])
    with text:
        labels = _choices(stored, target, n)
        _by_scale(path, key, doc_id)
    with curves:
        # the charts are cached on their data's values: as tuples, the loglikelihoods hash as values
        lls = history.assign(loglikelihoods=history["loglikelihoods"].map(tuple))
        draw(st, item_charts.choice_curves, lls, labels, target, steps)
        draw(st, item_charts.outcome_strip, history.drop(columns="loglikelihoods"), steps)


def _target(history: pd.DataFrame) -> int | None:
    known = history["target"].dropna()
    return int(known.iloc[-1]) if len(known) else None


def _choices(stored: pd.DataFrame, target: int | None, n: int) -> list[str]:
    """Show the prompt and choices (as text, never markdown); return a short label per choice."""
    labels = [f"{i} (right)" if i == target else str(i) for i in range(n)]
    if stored.empty:
        st.caption("The document's text is not stored (a store written before documents were kept, "
                   "or samples imported without lm-eval's `doc` and `arguments`).")
        return labels
    if len(stored) > 1:
        st.caption(f"{len(stored)} versions of this doc_id are stored (its data changed between runs); "
                   "the first is shown.")
    doc = stored.iloc[0]
    prompt, texts = _prompt_and_choices(doc["prompt"], list(doc["choices"]), doc["contexts"])
    st.caption(f"The prompt as lm-eval built it (data fingerprint {code(doc['fingerprint'][:16])})"
               + (", up to where the choices differ" if len(texts) and texts[0].startswith("...") else "") + ":")
    st.text(prompt)  # plain text, newlines kept; st.code cost the page ~0.4 s of syntax highlighter
    # a plain table: a few rows, each choice's text wrapped whole (the interactive grid cut long ones)
    st.table(pd.DataFrame({"text": texts}, index=pd.Index(labels[:len(texts)], name="choice")))
    return labels


def _prompt_and_choices(prompt: str, choices: list[str], contexts) -> tuple[str, list[str]]:
    """The prompt and each choice's text. Where each choice has its own context (WinoGrande puts
    each option into the sentence), the prompt is what they share and a choice is the rest."""
    if contexts is None or contexts is pd.NA:
        return prompt, choices
    contexts = list(contexts)
    shared = os.path.commonprefix(contexts)
    return shared, ["..." + context[len(shared):] + choice for context, choice in zip(contexts, choices)]


def _by_scale(path: Path, key: ItemsKey, doc_id: int) -> None:
    rows = data.item_query(path, "by_scale", key, doc_id)
    if rows.empty:
        return
    rows = data.add_model_columns(rows.assign(step=rows["step"].astype("Int64")), data.load_models(path))
    right = int(rows["correct"].sum())
    st.markdown(f"**By scale**: right at their last checkpoint in {right} of {len(rows)} models")
    draw(st, item_charts.by_scale, rows, width="content")
