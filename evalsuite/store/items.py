"""Item-level training dynamics: which documents each checkpoint of a model gets right, computed
in DuckDB over the samples table (one row per document per checkpoint).

For one (model, task, shots, metric, source), `ItemsKey`, over the evaluated steps in order:

- `learned_at`: the first evaluated step from which the document is answered correctly at every
  later evaluated step; null when it is wrong at its last one;
- `flips`: how often its correctness changes between consecutive evaluated steps;
- `final_correct`, and the `margin`: the right choice's loglikelihood minus the best wrong one's
  (raw loglikelihoods, the quantity `acc` compares; `acc_norm` divides each by its choice's length
  first, so near ties can disagree in sign). Null where there is no wrong choice (LAMBADA).
- by a continuous metric (`p_correct`, `bpb`: store/metrics.py), right and wrong are acc's, and
  its value at the last step is added (`final_p_correct`, `final_bpb`).

Plus the same documents' correctness at each model's last checkpoint (difficulty by scale).

One run stands for each checkpoint: of the source's runs with samples for the task at that step,
the one on the full set (else the most documents), then the latest. Every function reads only
the rows it returns or aggregates, through one read-only connection; at full scale (28.7M sample
rows) each one is timed by benchmarks/bench_items.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from evalsuite.errors import EvalsuiteError
from evalsuite.store import stand_ins
from evalsuite.store.db import connect, existing, has_table, read_df
from evalsuite.store.metrics import DERIVED, DOCUMENT_JOIN, value_sql

# metric -> the samples column saying right or wrong (a continuous metric's documents are acc's)
METRICS = {"acc": "correct", "acc_norm": "correct_norm", "p_correct": "correct", "bpb": "correct"}
MAX_DOCS_PER_QUERY = 10_000  # documents one cells/documents query may ask for

# Which of a checkpoint's runs stands for it: the full set over a --limit trial, the most
# documents, then the one that finished last (store.scores_with_representative agrees).
_RUN_ORDER = "{r}doc_limit IS NULL DESC, {r}doc_limit DESC, {r}finished_at DESC NULLS LAST, {r}run_id DESC"
# The run standing for each checkpoint of $model (see the module docstring).
_CHOSEN = f"""
    present AS (SELECT DISTINCT run_id FROM SAMPLES
                WHERE model = $model AND task = $task AND shots = $shots),
    chosen AS (SELECT run_id FROM runs SEMI JOIN present USING (run_id)
               WHERE model = $model AND source = $source
               QUALIFY row_number() OVER (PARTITION BY step ORDER BY {_RUN_ORDER.format(r="")}) = 1)"""

# Right minus best wrong loglikelihood, `t` the right choice's index (0-based).
_MARGIN = ("CASE WHEN {t} IS NOT NULL AND len({lls}) > 1 THEN {lls}[{t} + 1] - "
           "list_max(list_filter({lls}, lambda x, i: i <> {t} + 1)) END")


@dataclass(frozen=True)
class ItemsKey:
    """Whose documents: one model's checkpoints on one task, scored by one metric."""

    model: str
    task: str
    shots: int = 0
    metric: str = "acc"  # acc, acc_norm, or a continuous one (p_correct, bpb)
    source: str = "local"

    def params(self, every_model: bool = False, **extra) -> dict:
        """The SQL parameters ($model, $task, $shots, $source, and `extra`); DuckDB refuses
        unused ones, so a query over every model leaves $model out."""
        left_out = {"metric", "model"} if every_model else {"metric"}
        return {**{k: v for k, v in asdict(self).items() if k not in left_out}, **extra}

    @property
    def column(self) -> str:
        if self.metric not in METRICS:
            raise EvalsuiteError(f"bad metric {self.metric!r}: per-document statistics are for "
                                 f"{', '.join(METRICS)}")
        return METRICS[self.metric]


def _read(path: Path, sql: str, params: dict, needs: str | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run one read-only query; in it `SAMPLES`, `FINGERPRINTS` and `DOCUMENTS` name what this store
    holds (store/stand_ins.py). A sample's right answer is its own, else its document's
    (metrics.DOCUMENT_JOIN): samples stored before WinoGrande's right choice was derived from acc
    hold none for it. A query on a table an older store lacks (`needs`) gives no rows, with
    `columns` (as read_df)."""
    with connect(existing(path), read_only=True) as con:
        if needs is not None and not has_table(con, needs):
            return pd.DataFrame(columns=list(columns))
        return con.execute(stand_ins.fill(con, sql), params).df()


def sample_sources(path: Path, model: str, task: str, shots: int) -> list[str]:
    """The sources whose runs hold samples of this model, task and shot count."""
    frame = _read(path, """
        SELECT DISTINCT r.source FROM SAMPLES s JOIN runs r USING (run_id)
        WHERE s.model = $model AND s.task = $task AND s.shots = $shots ORDER BY 1""",
                  {"model": model, "task": task, "shots": shots})
    return list(frame["source"])


def item_stats(path: Path, key: ItemsKey) -> pd.DataFrame:
    """One row per document: doc_id, steps (evaluated), learned_at, flips, final_correct,
    final_margin, final_<metric> for a continuous one, and mixed_texts: whether its checkpoints
    scored more than one text under its doc_id (the task's data changed between runs: its
    learned_at and flips, followed by doc_id, then join them; false where the samples do not
    say); ordered by doc_id. Empty when nothing is stored for the key."""
    margin = _MARGIN.format(t="coalesce(s.target, d.target)", lls="s.loglikelihoods")
    sql = f"""
        WITH {_CHOSEN},
        ordered AS (
            SELECT doc_id, step, fingerprint_id, {key.column} AS ok,
                   lag({key.column}) OVER (PARTITION BY doc_id ORDER BY step) AS before
            FROM SAMPLES
            WHERE model = $model AND task = $task AND shots = $shots
              AND run_id IN (SELECT run_id FROM chosen) AND {key.column} IS NOT NULL),
        counted AS (
            -- (a released model's one sample has step NULL, which arg_max would pass over: -1)
            SELECT doc_id, count(*) AS steps, max(step) AS last, arg_max(ok, coalesce(step, -1)) AS final_correct,
                   -- correct at its last step: learned where it last went from wrong to right,
                   -- or at its first step if it was never wrong
                   CASE WHEN NOT arg_max(ok, coalesce(step, -1)) THEN NULL WHEN bool_and(ok) THEN min(step)
                        ELSE max(step) FILTER (WHERE ok AND NOT before) END AS learned_at,
                   count(*) FILTER (WHERE ok <> before) AS flips,
                   min(fingerprint_id) <> max(fingerprint_id) AS mixed_texts
            FROM ordered GROUP BY doc_id),
        -- each document's sample at its last step, read again: carrying every step's loglikelihood
        -- list through the aggregate above cost more (0.17 s against 0.12 s for LAMBADA at full scale)
        per_doc AS (
            SELECT c.*, s.task, s.shots, s.target, s.loglikelihoods, s.fingerprint_id
            FROM SAMPLES s JOIN counted c ON s.doc_id = c.doc_id AND s.step IS NOT DISTINCT FROM c.last
            WHERE s.model = $model AND s.task = $task AND s.shots = $shots
              AND s.run_id IN (SELECT run_id FROM chosen))
        SELECT s.doc_id, s.steps, s.learned_at, s.flips, s.final_correct, {margin} AS final_margin{_final_value(key)},
               coalesce(s.mixed_texts, false) AS mixed_texts
        FROM per_doc s {DOCUMENT_JOIN}
        ORDER BY s.doc_id"""
    return _read(path, sql, key.params())


def _final_value(key: ItemsKey) -> str:
    """A continuous metric's value at each document's last step, from its loglikelihoods there
    and its document (`s` and `d` as in metrics.py), as a column of item_stats; none for acc."""
    return f", {value_sql(key.metric)[0]} AS final_{key.metric}" if key.metric in DERIVED else ""


def item_cells(path: Path, key: ItemsKey, doc_ids: list[int]) -> pd.DataFrame:
    """doc_id, step, correct for the documents asked (a heat map's rows), every evaluated step."""
    sql = f"""
        WITH {_CHOSEN}
        SELECT doc_id, step, {key.column} AS correct FROM SAMPLES
        WHERE model = $model AND task = $task AND shots = $shots AND list_contains($docs, doc_id)
          AND run_id IN (SELECT run_id FROM chosen) AND {key.column} IS NOT NULL
        ORDER BY doc_id, step"""
    return _read(path, sql, key.params(docs=_doc_list(doc_ids)))


def item_history(path: Path, key: ItemsKey, doc_id: int) -> pd.DataFrame:
    """One document at every evaluated step: step, correct, margin, loglikelihoods (one per
    choice), target."""
    margin = _MARGIN.format(t="coalesce(s.target, d.target)", lls="s.loglikelihoods")
    sql = f"""
        WITH {_CHOSEN}
        SELECT s.step, s.{key.column} AS correct, {margin} AS margin, s.loglikelihoods,
               coalesce(s.target, d.target) AS target
        FROM SAMPLES s {DOCUMENT_JOIN}
        WHERE s.model = $model AND s.task = $task AND s.shots = $shots AND s.doc_id = $doc
          AND s.run_id IN (SELECT run_id FROM chosen)
        ORDER BY s.step"""
    return _read(path, sql, key.params(doc=doc_id))


def _last_checkpoints(key: ItemsKey) -> str:
    """Each model's last checkpoint with this task's scores from the source, and the runs there
    ranked as _CHOSEN ranks them (SQL for a WITH clause). Read from the small runs and scores
    tables so that the samples are only read at those steps; a model whose last run there has no
    samples (a results file imported without its samples file) is left out."""
    return f"""
        last AS (SELECT model, max(step) AS step FROM runs
                 WHERE source = $source AND step IS NOT NULL AND run_id IN
                       (SELECT run_id FROM scores WHERE task = $task AND shots = $shots)
                 GROUP BY model),
        ranked AS (SELECT r.run_id, row_number() OVER (PARTITION BY r.model ORDER BY {_RUN_ORDER.format(r="r.")})
                          AS rank
                   FROM runs r JOIN last USING (model, step) WHERE r.source = $source)"""


def by_scale(path: Path, key: ItemsKey, doc_id: int) -> pd.DataFrame:
    """Difficulty by scale for one document: model, step (each model's last checkpoint, as
    _last_checkpoints finds it), correct, margin there; key.model is not used."""
    margin = _MARGIN.format(t="coalesce(s.target, d.target)", lls="s.loglikelihoods")
    sql = f"""
        WITH {_last_checkpoints(key)}
        SELECT s.model, s.step, arg_min(s.{key.column}, k.rank) AS correct, arg_min({margin}, k.rank) AS margin
        FROM SAMPLES s JOIN last USING (model, step) JOIN ranked k USING (run_id) {DOCUMENT_JOIN}
        WHERE s.task = $task AND s.shots = $shots AND s.doc_id = $doc AND s.{key.column} IS NOT NULL
        GROUP BY s.model, s.step ORDER BY s.model"""
    return _read(path, sql, key.params(every_model=True, doc=doc_id))


def right_by_scale(path: Path, key: ItemsKey) -> pd.DataFrame:
    """Every document of the task: doc_id, models (with samples at their last checkpoint, as
    _last_checkpoints finds it), right (how many of them answer it correctly there); key.model is
    not used."""
    sql = f"""
        WITH {_last_checkpoints(key)},
        final AS (SELECT s.model, s.doc_id, arg_min(s.{key.column}, k.rank) AS ok
                  FROM SAMPLES s JOIN last USING (model, step) JOIN ranked k USING (run_id)
                  WHERE s.task = $task AND s.shots = $shots AND s.{key.column} IS NOT NULL
                  GROUP BY s.model, s.doc_id)
        SELECT doc_id, count(*) AS models, count(*) FILTER (WHERE ok) AS "right"
        FROM final GROUP BY doc_id ORDER BY doc_id"""
    return _read(path, sql, key.params(every_model=True))


def documents(path: Path, task: str, shots: int, doc_ids: list[int]) -> pd.DataFrame:
    """The stored documents asked for: doc_id, fingerprint, prompt, choices, contexts, target
    (several rows for a doc_id whose data changed between runs; none for a store made before
    documents were kept)."""
    return read_df(path, """
        SELECT doc_id, fingerprint, prompt, choices, contexts, target FROM documents
        WHERE task = $task AND shots = $shots AND list_contains($docs, doc_id)
        ORDER BY doc_id, fingerprint""", {"task": task, "shots": shots, "docs": _doc_list(doc_ids)},
                   needs="documents", columns=("doc_id", "fingerprint", "prompt", "choices", "contexts", "target"))


# The documents' (doc_id, fingerprint) that the `scored` samples point at.
_SCORED_TEXT = "SELECT s.doc_id, f.fingerprint FROM scored s LEFT JOIN FINGERPRINTS f USING (fingerprint_id)"


def documents_of(path: Path, key: ItemsKey, doc_ids: list[int]) -> pd.DataFrame:
    """As documents(), but only the documents the key's own samples were scored on (their
    fingerprints): another source's text for the same doc_id is never shown for them. A sample
    with no fingerprint (an older store's, ambiguous) shows every stored document of its doc_id."""
    return _read(path, f"""
        WITH {_CHOSEN},
        scored AS (SELECT DISTINCT doc_id, fingerprint_id FROM SAMPLES
                   WHERE model = $model AND task = $task AND shots = $shots AND list_contains($docs, doc_id)
                     AND run_id IN (SELECT run_id FROM chosen))
        SELECT d.doc_id, d.fingerprint, d.prompt, d.choices, d.contexts, d.target
        FROM documents d SEMI JOIN ({_SCORED_TEXT}) s
             ON d.doc_id = s.doc_id AND (s.fingerprint IS NULL OR d.fingerprint = s.fingerprint)
        WHERE d.task = $task AND d.shots = $shots
        ORDER BY d.doc_id, d.fingerprint""", key.params(docs=_doc_list(doc_ids)),
                 needs="documents", columns=("doc_id", "fingerprint", "prompt", "choices", "contexts", "target"))


def prompt_ends_of(path: Path, key: ItemsKey, chars: int = 100) -> pd.DataFrame:
    """As prompt_ends(), from the documents the key's own samples were scored on (documents_of)."""
    return _read(path, f"""
        WITH {_CHOSEN},
        scored AS (SELECT DISTINCT doc_id, fingerprint_id FROM SAMPLES
                   WHERE model = $model AND task = $task AND shots = $shots
                     AND run_id IN (SELECT run_id FROM chosen))
        SELECT d.doc_id, right(any_value(d.prompt), $chars) AS prompt_end
        FROM documents d SEMI JOIN ({_SCORED_TEXT}) s
             ON d.doc_id = s.doc_id AND (s.fingerprint IS NULL OR d.fingerprint = s.fingerprint)
        WHERE d.task = $task AND d.shots = $shots
        GROUP BY d.doc_id ORDER BY d.doc_id""", key.params(chars=chars), needs="documents",
                 columns=("doc_id", "prompt_end"))


def prompt_ends(path: Path, task: str, shots: int, chars: int = 100) -> pd.DataFrame:
    """doc_id, prompt_end: the last characters of each stored document's prompt (where the
    question is, after any few-shot examples), to tell documents apart in a table."""
    return read_df(path, """
        SELECT doc_id, right(any_value(prompt), $chars) AS prompt_end FROM documents
        WHERE task = $task AND shots = $shots GROUP BY doc_id ORDER BY doc_id""",
                   {"task": task, "shots": shots, "chars": chars}, needs="documents", columns=("doc_id", "prompt_end"))


def _doc_list(doc_ids: list[int]) -> list[int]:
    if len(doc_ids) > MAX_DOCS_PER_QUERY:
        raise EvalsuiteError(f"{len(doc_ids)} documents asked at once; at most {MAX_DOCS_PER_QUERY}")
    return [int(d) for d in doc_ids]


def flips_by_task(path: Path, model: str, shots: int, source: str) -> pd.DataFrame:
    """task, docs, flips: for each task this model has samples of at this shot count from the
    source, how many documents and how many changes between right and wrong (acc) between its
    consecutive evaluated checkpoints, over all of them (the Items view opens on the most)."""
    sql = f"""
        WITH present AS (SELECT DISTINCT run_id, task FROM SAMPLES WHERE model = $model AND shots = $shots),
        chosen AS (SELECT p.run_id, p.task FROM present p JOIN runs r USING (run_id)
                   WHERE r.model = $model AND r.source = $source
                   QUALIFY row_number() OVER (PARTITION BY r.step, p.task
                                              ORDER BY {_RUN_ORDER.format(r="r.")}) = 1),
        -- each document's outcomes as a list in step order, not a window over every sample
        -- (0.14 s against 0.34 s for a model's 1.8M samples at full scale, a throwaway probe)
        per_doc AS (SELECT task, doc_id, list(correct ORDER BY step) AS oks
                    FROM SAMPLES SEMI JOIN chosen USING (run_id, task)
                    WHERE model = $model AND shots = $shots AND correct IS NOT NULL GROUP BY task, doc_id)
        SELECT task, count(*) AS docs,
               sum(len(list_filter(range(2, len(oks) + 1), lambda i: oks[i] <> oks[i - 1])))::BIGINT AS flips
        FROM per_doc GROUP BY task ORDER BY flips DESC, task"""
    return _read(path, sql, {"model": model, "shots": shots, "source": source})
