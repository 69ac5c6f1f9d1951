"""Packed rows: how one document's loglikelihood requests become one sequence for the model.

The requests of a document (SciQ's support paragraph with each answer, ARC's question with each
choice) share a prefix: it goes into the row once (segment 0), then each request's own suffix
(segments 1, 2, ...) with its own position ids, so one forward pass with a tree attention mask
(each segment sees the prefix and itself) gives every request's logits. `truncate` is HFLM's
left truncation, so a long request keeps exactly the tokens lm-eval's `hf` would.

A tree mask replaces the model's own attention masks, sliding windows included; a request at
least as long as the model's window therefore has a row of its own (FastLM groups it alone), and
such rows come first, to be batched apart and scored with no mask: with the model's own masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One packed sequence: a shared prefix (segment 0) then each member's own suffix."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    scored: list[tuple[int, list[int], tuple]] = field(default_factory=list)  # (request, indices, targets)


def truncate(ctx: tuple, cont: tuple, max_length: int) -> tuple[tuple, tuple]:
    """HFLM's left truncation: input is (ctx + cont)[-(max_length + 1):][:-1]."""
    whole = (ctx + cont)[-(max_length + 1):]
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


def needs_model_mask(row: Row, window: int | None) -> bool:
    """A row of one request at least as long as the model's sliding window: only the model's own
    masks apply the window."""
    return window is not None and len(row.scored) == 1 and len(row.tokens) >= window


def plan_rows(pairs: list[tuple[tuple, tuple]], groups: list[list[int]], window: int | None = None) -> list[Row]:
    """Packed rows for unique (ctx, cont) token pairs grouped by document: those that need the
    model's own masks first, then the rest; each part longest first."""
    rows = [row for members in groups for row in _pack(members, pairs)]
    return sorted(rows, key=lambda r: (not needs_model_mask(r, window), -len(r.tokens)))
