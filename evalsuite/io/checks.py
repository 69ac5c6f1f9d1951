"""What a row may hold before it reaches the store: the checks `evalsuite import` runs on every
run, score, sample and document of a file before writing any of them.

A file that passes cannot make an insert fail (every number fits its DuckDB column: INTEGER is
32-bit) and cannot store nonsense: names follow evalsuite.names, numbers are finite, accuracies
lie in [0, 1], perplexities are positive, stderrs are not negative, shots, limits, document
counts and ids are non-negative integers (a model's steps are checked against its checkpoints
where the file is identified: io/identity.py). A document's texts are strings of bounded length,
its fingerprint a sha256 in hex, its right answer one of its choices, and it has as many choices
as its samples have loglikelihoods.
Each check raises BadRow with one line saying what is wrong.
"""

from __future__ import annotations

import math
import re

from evalsuite import names
from evalsuite.records import Document, Run, Sample, Score

INT32_MAX = 2**31 - 1  # DuckDB INTEGER
INT64_MAX = 2**63 - 1  # DuckDB BIGINT
MAX_TEXT = 1000  # characters in a free-text provenance field (device, batch size, model path)
MAX_PROMPT = 200_000  # characters in a document's prompt or choice (a 25-shot ARC prompt: about 10,000)
MAX_CHOICES = 100  # requests per document (the five tasks: 1, 2 or 4)
FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # lm-eval's doc_hash: sha256, hex
TEXT_FIELDS = ("backend", "model_source", "data_source", "batch_size", "device", "gpu_name", "hostname",
               "evalsuite_commit", "lm_eval_version", "transformers_version", "torch_version")


class BadRow(ValueError):
    """A value the store must not hold; the message says which and why."""


def check_job(run: Run, scores: list[Score], samples: list[Sample], documents: list[Document] | None = None) -> None:
    check_run(run)
    for score in scores:
        check_score(score)
    for sample in samples:
        check_sample(sample)
    choices = {(s.task, s.doc_id): len(s.loglikelihoods) for s in samples}
    for document in documents or []:
        check_document(document, choices.get((document.task, document.doc_id)))


def check_run(run: Run) -> None:
    _text("run id", run.run_id)
    _name("source", run.source)
    _name("model", run.model)
    _step(run.model, run.step)
    _count("limit", run.doc_limit, optional=True)
    _name("dtype", run.dtype, optional=True)
    for field in TEXT_FIELDS:
        _text(field, getattr(run, field), optional=True)
    if run.duration_s is not None and not (_finite(run.duration_s) and run.duration_s >= 0):
        raise BadRow(f"duration {run.duration_s!r} is not a number of seconds")


def check_score(score: Score) -> None:
    for kind in ("model", "task", "metric", "source"):
        _name(kind, getattr(score, kind))
    _name("dtype", score.dtype, optional=True)
    _text("run id", score.run_id)
    _step(score.model, score.step)
    if score.tokens is not None and not (isinstance(score.tokens, int) and 0 <= score.tokens <= INT64_MAX):
        raise BadRow(f"tokens {score.tokens!r} is not a token count")
    for what, value in (("shots", score.shots), ("n", score.n), ("limit", score.doc_limit)):
        _count(what, value, optional=what != "shots")
    _value(score.task, score.metric, score.value)
    if score.stderr is not None and not (_finite(score.stderr) and score.stderr >= 0):
        raise BadRow(f"{score.task} {score.metric} stderr {score.stderr!r} is not a finite number >= 0")


def check_sample(sample: Sample) -> None:
    _name("model", sample.model)
    _name("task", sample.task)
    _text("run id", sample.run_id)
    _step(sample.model, sample.step)
    for what, value in (("shots", sample.shots), ("doc_id", sample.doc_id), ("target", sample.target)):
        _count(what, value, optional=what == "target")
    where = f"{sample.task} document {sample.doc_id}"
    lls, greedy = sample.loglikelihoods, sample.is_greedy
    if not isinstance(lls, list) or not lls:
        raise BadRow(f"{where}: no loglikelihoods")
    if sample.target is not None and sample.target >= len(lls):
        raise BadRow(f"{where}: the right answer {sample.target} is not one of its {len(lls)} choices")
    if sample.fingerprint is not None and not (isinstance(sample.fingerprint, str)
                                               and FINGERPRINT.fullmatch(sample.fingerprint)):
        raise BadRow(f"{where}: the fingerprint {names.shown(sample.fingerprint)} is not a sha256 in hex")
    if not all(_finite(ll) for ll in lls):
        raise BadRow(f"{where}: a loglikelihood is not a finite number")
    if len(greedy) != len(lls) or not all(isinstance(g, bool) for g in greedy):
        raise BadRow(f"{where}: is_greedy does not hold one flag per choice")
    if not isinstance(sample.correct, bool) or not isinstance(sample.correct_norm, (bool, type(None))):
        raise BadRow(f"{where}: acc / acc_norm are not true or false")


def check_document(document: Document, n_choices: int | None = None) -> None:
    """A document as an lm-eval samples line describes it; n_choices: what its sample scored."""
    _name("task", document.task)
    for what, value in (("shots", document.shots), ("doc_id", document.doc_id), ("target", document.target)):
        _count(what, value, optional=what == "target")
    where = f"{document.task} document {document.doc_id}"
    if not isinstance(document.fingerprint, str) or not FINGERPRINT.fullmatch(document.fingerprint):
        raise BadRow(f"{where}: the fingerprint {names.shown(document.fingerprint)} is not a sha256 in hex")
    _prompt(where, "prompt", document.prompt)
    choices = document.choices
    if not isinstance(choices, list) or not 0 < len(choices) <= MAX_CHOICES:
        raise BadRow(f"{where}: it does not have 1 to {MAX_CHOICES} choices")
    for text in choices + (document.contexts or []):
        _prompt(where, "choice", text)
    if document.contexts is not None and len(document.contexts) != len(choices):
        raise BadRow(f"{where}: {len(document.contexts)} contexts for {len(choices)} choices")
    if n_choices is not None and n_choices != len(choices):
        raise BadRow(f"{where}: {len(choices)} choices, but its sample scored {n_choices}")
    if document.target is not None and document.target >= len(choices):
        raise BadRow(f"{where}: the right answer {document.target} is not one of its {len(choices)} choices")


def _prompt(where: str, what: str, text: object) -> None:
    if not isinstance(text, str) or len(text) > MAX_PROMPT:
        raise BadRow(f"{where}: a {what} is not text of at most {MAX_PROMPT:,} characters")


def _value(task: str, metric: str, value: object) -> None:
    if not _finite(value) or not isinstance(value, (int, float)):
        raise BadRow(f"{task} {metric} = {value!r} is not a finite number")
    if metric.startswith("acc") and not 0 <= value <= 1:
        raise BadRow(f"{task} {metric} = {value!r}: an accuracy lies between 0 and 1")
    if "perplexity" in metric and not value > 0:
        raise BadRow(f"{task} {metric} = {value!r}: a perplexity is above 0")


def _step(model: str, step: object) -> None:
    _count("step", step, optional=True)  # None: a released model's one checkpoint


def _count(what: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
        raise BadRow(f"{what} {names.shown(value)} is not a whole number from 0 to {INT32_MAX:,}")


def _name(kind: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not names.is_valid(value):
        raise BadRow(f"bad {kind} name {names.shown(value)}: {names.RULE}")


def _text(what: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise BadRow(f"{what} {names.shown(value)} is not one line of at most {MAX_TEXT} printable characters")


def _finite(value: object) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False
