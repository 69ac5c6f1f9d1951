"""What each per-document metric is, as SQL over a sample `s` (a samples row) and its document
`d` (its document, DOCUMENT_JOIN): the stored right/wrong of `acc` and `acc_norm`, and two continuous
metrics derived from the stored loglikelihoods, so runs stored before them get them too:

- `p_correct`: the probability of the right choice among the choices: the softmax of the
  choices' loglikelihoods, taken at the right one. Where a task has one continuation (LAMBADA),
  a softmax over it would always be 1, so it is the probability the model gives that
  continuation, exp(its loglikelihood).
- `bpb`: bits per UTF-8 byte of the right continuation as lm-eval built it (the choice's text
  in `documents.choices`, leading space included): -loglikelihood / ln 2 / its byte length.

Aggregated like acc: the mean over documents. The right choice is the sample's target, else its
document's (WinoGrande's samples stored before the target was derived hold none), else the only
continuation there is.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.errors import EvalsuiteError


@dataclass(frozen=True)
class Metric:
    name: str
    sql: str  # its value for one document, over `s` and `d`; NULL where the task does not have it
    binary: bool  # right (1) or wrong (0): McNemar's test applies; else a continuous value
    needs_documents: bool = True  # reads `d` (the right choice or its text)


_TARGET = "coalesce(s.target, d.target, CASE WHEN len(s.loglikelihoods) = 1 THEN 0 END)"
_RIGHT = f"s.loglikelihoods[{_TARGET} + 1]"
# log of the sum of exp(loglikelihoods), shifted by the largest so that nothing overflows
_LOG_TOTAL = ("list_max(s.loglikelihoods) + ln(list_sum(list_transform(s.loglikelihoods, "
              "lambda x: exp(x - list_max(s.loglikelihoods)))))")

METRICS = {m.name: m for m in (
    Metric("acc", "s.correct::DOUBLE", binary=True, needs_documents=False),
    Metric("acc_norm", "s.correct_norm::DOUBLE", binary=True, needs_documents=False),
    Metric("p_correct", f"exp({_RIGHT} - CASE WHEN len(s.loglikelihoods) = 1 THEN 0 ELSE {_LOG_TOTAL} END)",
           binary=False),
    Metric("bpb", f"-{_RIGHT} / ln(2) / nullif(strlen(d.choices[{_TARGET} + 1]), 0)", binary=False),
)}
DERIVED = ("p_correct", "bpb")  # computed here, never stored in the scores table

# What makes two samples of one task and shot count the same document, wherever samples are
# paired (two runs compared, consecutive checkpoints): its doc_id and the text it was scored on
# (SAMPLES' fingerprint_id), so a doc_id of other data (another data version, another lab's
# file) is never paired with this one; samples with no fingerprint (an older store's) pair by
# doc_id alone, as before.
DOCUMENT_KEY = ["doc_id", "fingerprint_id"]

# Each sample's own document `d`, as a join from a sample `s` of SAMPLES (store/stand_ins.py fills
# the placeholders): the one its fingerprint names, never another text stored under its doc_id (an
# import of other data); a sample with no fingerprint (an older store's, where it was ambiguous)
# meets any one. Every reader that needs a sample's right answer or choices joins it.
DOCUMENT_JOIN = (
    "LEFT JOIN (SELECT d.task, d.shots, d.doc_id, f.fingerprint_id, d.target, d.choices "
    "FROM DOCUMENTS d JOIN FINGERPRINTS f USING (fingerprint) "
    "UNION ALL SELECT task, shots, doc_id, NULL, any_value(target), any_value(choices) FROM DOCUMENTS "
    "GROUP BY task, shots, doc_id) d ON d.task = s.task AND d.shots = s.shots AND d.doc_id = s.doc_id "
    "AND d.fingerprint_id IS NOT DISTINCT FROM s.fingerprint_id")


def metric(name: str) -> Metric:
    """The metric of this name; an error naming the ones there are."""
    if name not in METRICS:
        raise EvalsuiteError(f"bad metric {name!r}: per-document metrics are {', '.join(METRICS)}")
    return METRICS[name]


def value_sql(name: str) -> tuple[str, str]:
    """(the metric's SQL over `s` and `d`, the join that brings in `d`: empty when not needed). The
    join names stand_ins' placeholders: the query is filled (stand_ins.fill) before it runs."""
    m = metric(name)
    return m.sql, DOCUMENT_JOIN if m.needs_documents else ""


def derived_columns() -> tuple[str, str]:
    """(", <p_correct> AS p_correct, <bpb> AS bpb", the join bringing in `d`): the derived
    metrics as extra columns of a query over samples `s`, null where not finite."""
    columns = "".join(f", CASE WHEN isfinite({METRICS[n].sql}) THEN {METRICS[n].sql} END AS {n}" for n in DERIVED)
    return columns, value_sql(DERIVED[0])[1]
