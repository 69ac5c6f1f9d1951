"""How closely one backend's loglikelihoods agree with another's on the same lm-eval requests.

Owns the comparison used by the float16 test (tests/test_float16.py) and the float16 benchmark
(benchmarks/bench_fp16.py): relative errors against a reference (the same weights in float32),
and, per document, which choice each backend picks for acc (highest loglikelihood) and acc_norm
(highest loglikelihood per character of the choice, as lm-eval) and whether a pick that differs
is explained by the numerical error. Pure Python; no torch.

A result is lm-eval's `(loglikelihood, is_greedy)`; requests are lm-eval Instances.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

METRICS = ("acc", "acc_norm")


@dataclass(frozen=True)
class ChoiceDifference:
    """A document whose acc or acc_norm pick differs between two backends."""

    task: str
    doc_id: int
    metric: str  # "acc" or "acc_norm"
    margin: float  # |reference score of pick a - of pick b|: how close a tie it is in float32
    allowance: float  # 2 x the larger backend error on this document's choices, same units

    @property
    def explained(self) -> bool:
        """A pick can flip only where the two picks' reference scores are within twice the error:
        each backend's argmax is off by at most its own error on each side of the comparison."""
        return self.margin <= self.allowance


def worst_relative_error(results: list, reference: list) -> float:
    return max(abs(r[0] - f[0]) / abs(f[0]) for r, f in zip(results, reference))


def worst_absolute_error(results: list, reference: list) -> float:
    return max(abs(r[0] - f[0]) for r, f in zip(results, reference))


def greedy_differences(results: list, other: list) -> int:
    return sum(a[1] != b[1] for a, b in zip(results, other))


def _documents(requests) -> dict[tuple, list[int]]:
    """(task, doc_id) -> indices of its requests, for documents with two or more choices."""
    docs = defaultdict(list)
    for i, req in enumerate(requests):
        docs[(req.task_name, req.doc_id)].append(i)
    return {key: idx for key, idx in docs.items() if len(idx) > 1}


def _scores(requests, results, idx: list[int], metric: str) -> list[float]:
    # lm-eval's acc_norm divides by the choice's characters; the continuation is " " + choice
    if metric == "acc":
        return [results[i][0] for i in idx]
    return [results[i][0] / max(1, len(requests[i].args[1].lstrip(" "))) for i in idx]


def _pick(scores: list[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)  # the first of equal maxima, as numpy


def choice_differences(requests, a: list, b: list, reference: list) -> list[ChoiceDifference]:
    """Every (document, metric) where backends `a` and `b` pick different choices."""
    out = []
    for (task, doc_id), idx in _documents(requests).items():
        for metric in METRICS:
            sa, sb, ref = (_scores(requests, r, idx, metric) for r in (a, b, reference))
            pa, pb = _pick(sa), _pick(sb)
            if pa == pb:
                continue
            error = max(max(abs(x - y) for x, y in zip(s, ref)) for s in (sa, sb))
            out.append(ChoiceDifference(task, doc_id, metric, abs(ref[pa] - ref[pb]), 2 * error))
    return out


def documents_with_choices(requests) -> int:
    return len(_documents(requests))
