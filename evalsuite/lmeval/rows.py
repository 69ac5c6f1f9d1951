"""Packed rows: how one document's loglikelihood requests become one sequence for the model.

The requests of a document (SciQ's support paragraph with each answer, ARC's question with each
choice) share a prefix: it goes into the row once (segment 0), then each request's own suffix
(segments 1, 2, ...) with its own position ids, so one forward pass with a tree attention mask
(each segment sees the prefix and itself) gives every request's logits. `truncate` is HFLM's
left truncation, so a long request keeps exactly the tokens lm-eval's `hf` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LENGTH = 2048  # Pythia's context; HFLM's left-truncation limit


@dataclass
class Row:
    """One packed sequence: a shared prefix (segment 0) then each member's own suffix."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    scored: list[tuple[int, list[int], tuple]] = field(default_factory=list)  # (request, indices, targets)


def truncate(ctx: tuple, cont: tuple) -> tuple[tuple, tuple]:
    """HFLM's left truncation: input is (ctx + cont)[-(MAX_LENGTH + 1):][:-1]."""
    whole = (ctx + cont)[-(MAX_LENGTH + 1):]
    return whole[: len(whole) - len(cont)], cont


def _common_prefix(seqs: list[tuple]) -> int:
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


def _pack(members: list[int], pairs: list[tuple[tuple, tuple]]) -> list[Row]:
    """Rows for one document's requests: one row around their common prefix when they share one."""
    inputs = [(pairs[m][0] + pairs[m][1])[:-1] for m in members]
    shared = min(_common_prefix(inputs), min(len(pairs[m][0]) for m in members))
    if shared == 0 and len(members) > 1:
        return [row for m in members for row in _pack([m], pairs)]
    row = Row(list(inputs[0][:shared]), list(range(shared)), [0] * shared)
    for k, (m, x) in enumerate(zip(members, inputs), start=1):
        start, ctx_len = len(row.tokens), len(pairs[m][0])
        row.tokens += x[shared:]
        row.positions += range(shared, len(x))
        row.segments += [k] * (len(x) - shared)
        # logits at input position j predict token j + 1: positions ctx_len-1 .. len(x)-1 are scored
        idx = [j if j < shared else start + j - shared for j in range(ctx_len - 1, len(x))]
        row.scored.append((m, idx, pairs[m][1]))
    return [row]


def plan_rows(pairs: list[tuple[tuple, tuple]], groups: list[list[int]]) -> list[Row]:
    """Packed rows, longest first, for unique (ctx, cont) token pairs grouped by document."""
    rows = [row for members in groups for row in _pack(members, pairs)]
    return sorted(rows, key=lambda r: -len(r.tokens))
