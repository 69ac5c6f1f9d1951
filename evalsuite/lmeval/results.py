"""The one place that knows the shape of lm-eval's results: 0.4's and the older 0.3 files'.

lm-eval 0.4 writes `{"results": {task: {"acc,none": .., "acc_stderr,none": ..}}, "n-shot",
"n-samples"}` and, with log_samples, per-document `samples`; lm-eval 0.3 (EleutherAI's published
Pythia files) writes `{"results": {task: {"acc": .., "acc_stderr": .., "ppl": ..}}, "config":
{"num_fewshot": ..}}`. Both become `Metric`s; metric names are normalised (0.3's `ppl` is
`perplexity`).

A sample also says what its document is (`doc`, `arguments`: the (context, continuation) of
each request, `target`); `make_document` turns that into a Document, the same one whether it
comes from a sweep's own requests or from lm-eval's samples file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from evalsuite.records import Document, Sample, Score

METRIC_ALIASES = {"ppl": "perplexity"}


@dataclass(frozen=True)
class Metric:
    task: str
    metric: str
    shots: int
    value: float
    stderr: float | None
    n: int | None


def parse_results(raw: dict, tasks: set[str] | None = None) -> list[Metric]:
    """Every metric of every task (or of `tasks` only) in an lm-eval 0.3 or 0.4 results dict."""
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), dict):
        raise ValueError("not an lm-eval results file: no 'results' mapping")
    default_shots = _mapping(raw, "config").get("num_fewshot")
    metrics = []
    for task, values in raw["results"].items():
        if (tasks is not None and task not in tasks) or not isinstance(values, dict):
            continue
        shots = whole_number(_mapping(raw, "n-shot").get(task, default_shots), f"{task} shots") or 0
        n = whole_number(_mapping(_mapping(raw, "n-samples"), task).get("effective"), f"{task} n-samples")
        metrics.extend(_task_metrics(task, values, shots, n))
    return metrics


def _mapping(raw: dict, key: str) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' is not a mapping")
    return value


def whole_number(value, what: str) -> int | None:
    """An integer field (shots, document counts, limits): lm-eval writes 5 or 5.0; None stays None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError(f"{what} {repr(value)[:40]} is not a whole number")


def _task_metrics(task: str, values: dict, shots: int, n: int | None) -> list[Metric]:
    out = []
    for key, value in values.items():
        name, _, filter_name = key.partition(",")  # 0.4: 'acc,none'; 0.3: 'acc'
        if "_stderr" in name or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name in ("sample_len",):
            continue
        stderr = values.get(f"{name}_stderr,{filter_name}" if filter_name else f"{name}_stderr")
        stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
        name = METRIC_ALIASES.get(name, name)
        # a metric under another filter than 'none' (gsm8k's 'exact_match,strict-match') is its own
        out.append(Metric(task, f"{name}.{filter_name}" if filter_name not in ("", "none") else name,
                          shots, float(value), stderr, n))
    return out


def to_scores(metrics: list[Metric], *, model: str, step: int | None, tokens: int | None, run_id: str,
              source: str, doc_limit: int | None = None, dtype: str | None = None) -> list[Score]:
    """The metrics as stored scores; `tokens`: tokens seen at this checkpoint, from the model's
    description (None where it is not known)."""
    return [
        Score(model=model, step=step, tokens=tokens,
              task=m.task, metric=m.metric, shots=m.shots, value=m.value, stderr=m.stderr, n=m.n,
              doc_limit=doc_limit, dtype=dtype, run_id=run_id, source=source)
        for m in metrics
    ]


def parse_samples(raw_samples: dict[str, list[dict]], *, model: str, step: int | None, shots: int,
                  run_id: str) -> list[Sample]:
    """lm-eval 0.4's `samples` (log_samples=True) -> one Sample per document, pointing at its
    document by the `doc_hash` lm-eval logs (an importer replaces it by its Document's own hash,
    parse_documents', where the line logs the document)."""
    return [
        make_sample(run_id=run_id, model=model, step=step, task=task, shots=shots,
                    doc_id=int(doc["doc_id"]), target=_gold(doc["target"], doc["filtered_resps"], doc.get("acc")),
                    resps=doc["filtered_resps"], metrics=doc,
                    fingerprint=doc["doc_hash"] if isinstance(doc.get("doc_hash"), str) else None)
        for task, docs in raw_samples.items() for doc in docs
    ]


def make_sample(*, run_id: str, model: str, step: int | None, task: str, shots: int, doc_id: int,
                target: int | None, resps: list, metrics: dict, fingerprint: str | None = None) -> Sample:
    """One document's Sample from its right choice (None: not multiple choice), its filtered
    responses ([(loglikelihood, is_greedy)] per choice) and its per-document metrics (acc, acc_norm)."""
    return Sample(
        run_id=run_id, model=model, step=step, task=task, shots=shots, doc_id=doc_id,
        target=target, correct=bool(metrics["acc"]),
        correct_norm=bool(metrics["acc_norm"]) if "acc_norm" in metrics else None,
        loglikelihoods=[float(r[0]) for r in resps], is_greedy=[_flag(r[1]) for r in resps],
        fingerprint=fingerprint,
    )


# lm-eval's samples_*.jsonl files hold str() of every response and target ("-5.2", "False", "0"),
# while the in-memory samples hold floats, bools and ints: both shapes are read here.
def _target(target, n_choices: int) -> int | None:
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and n_choices > 1 and target.strip().isdigit():
        return int(target)  # a multiple-choice index; LAMBADA's target is a word (one response)
    return None


def _gold(target, resps: list, acc) -> int | None:
    """The right choice of a document read from lm-eval's samples (a sweep knows it exactly:
    requests.PreparedDoc.gold): the logged target where it is an index; else what lm-eval's acc says of
    the loglikelihoods. WinoGrande logs its shared continuation as the target, but acc is
    `argmax(loglikelihoods) == gold` (first maximum on ties), so the right choice is the argmax
    when acc is 1 and, of two choices, the other one when it is 0."""
    found = _target(target, len(resps))
    if found is not None or len(resps) < 2 or acc is None:
        return found
    lls = [float(r[0]) for r in resps]
    best = lls.index(max(lls))
    if float(acc) == 1.0:
        return best
    return 1 - best if len(lls) == 2 else None


def _flag(value) -> bool:
    return value.strip() == "True" if isinstance(value, str) else bool(value)


def parse_documents(raw_samples: dict[str, list[dict]], *, shots: int) -> list[Document]:
    """The documents lm-eval 0.4's samples describe: one per sample that logs its `doc` and
    `arguments` (lm-eval always does; a line without them yields a Sample and no Document)."""
    return [
        make_document(task=task, shots=shots, doc_id=int(line["doc_id"]), doc=line["doc"],
                      arguments=line["arguments"],
                      target=_gold(line["target"], line.get("filtered_resps", []), line.get("acc")))
        for task, lines in raw_samples.items() for line in lines
        if "doc" in line and "arguments" in line
    ]


def make_document(*, task: str, shots: int, doc_id: int, doc, arguments, target: int | None) -> Document:
    """One Document from a document's data and its requests' arguments: a list of (context,
    continuation) pairs in memory, or `{"gen_args_0": {"arg_0": context, "arg_1": continuation}}`
    as lm-eval's samples file writes them."""
    pairs = _argument_pairs(arguments)
    if not pairs:
        raise ValueError("a document without requests")
    contexts = [str(context) for context, _ in pairs]
    shared = all(c == contexts[0] for c in contexts)
    return Document(task=task, shots=shots, doc_id=doc_id, fingerprint=doc_hash(doc), prompt=contexts[0],
                    choices=[str(continuation) for _, continuation in pairs],
                    contexts=None if shared else contexts, target=target)


def _argument_pairs(arguments) -> list[tuple]:
    if isinstance(arguments, dict):  # the samples file: {"gen_args_<i>": {"arg_<j>": ...}} in order
        arguments = [[arg[f"arg_{j}"] for j in range(len(arg))]
                     for arg in (arguments[f"gen_args_{i}"] for i in range(len(arguments)))]
    pairs = [tuple(args) for args in arguments]
    if not all(len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in pairs):
        raise ValueError("a request's arguments are not a (context, continuation) pair of strings")
    return pairs


def doc_hash(doc) -> str:
    """lm-eval's `doc_hash` of a document: sha256 of its JSON as lm-eval writes it (indented,
    non-ASCII kept, numpy scalars as numbers and anything else unserialisable as text)."""
    text = json.dumps(doc, indent=2, default=_serialisable, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _serialisable(value):
    # lm_eval.utils.handle_non_serializable, without importing lm-eval (the importer does not need it)
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, set):
        return list(value)
    return str(value)
