"""The fast lm-eval backend (`evalsuite-fast`): loglikelihood scoring that matches lm-eval's `hf`.

Owns how a loaded causal LM scores lm-eval loglikelihood requests. Same numbers as HFLM (same
tokenization, same truncation, same acc/acc_norm per document), much less work:

- Shared-prefix packing: the requests of one document (SciQ's support paragraph, ARC's and
  PIQA's question, winogrande's sentence start) become ONE row: the common prefix once, then
  each continuation, with a tree attention mask (each continuation sees the prefix and itself)
  and its own position ids. The prefix is encoded once and its keys/values serve every
  continuation, within one forward pass; identical requests are computed once.
- Vocabulary logits only at the scored positions (the LM head and log-softmax are ~all of a
  small Pythia's compute when run at every position).
- Batches cut by a token budget over length-sorted rows; on out-of-memory the budget halves
  and the batch is retried.
- Tokenization through a `TokenCache` (evalsuite/token_cache.py): a sweep tokenizes each task
  once, not once per checkpoint. By default every FastLM in a process shares one cache per
  tokenizer (`shared_token_cache`); pass `token_cache=TokenCache()` to isolate one.

API: `FastLM(model=<HF causal LM>, tokenizer=<HF tokenizer>, batch_size="auto" | int,
token_budget=None, token_cache=None)`. `batch_size` "auto" uses the device's default token
budget; an int also caps the rows per batch. The model is used in the dtype it was loaded in
(runner.py loads float16 on GPU, as EleutherAI's published runs); attention is PyTorch SDPA.
After a call, `lm.stats` (a `ScoringStats`) says how much work was done. loglikelihood_rolling
and generate_until raise NotImplementedError (evalsuite's five tasks use neither).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from evalsuite.token_cache import TokenCache, shared_token_cache

__all__ = ["FastLM", "ScoringStats", "TokenCache", "shared_token_cache", "plan_rows"]

MAX_LENGTH = 2048  # Pythia's context; HFLM's left-truncation limit
CPU_TOKEN_BUDGET = 8192  # tokens (rows x padded length) per forward batch
GPU_TOKEN_BUDGET = 65536
HEAD_CHUNK = 1024  # scored positions per LM-head matmul: bounds the [positions, vocab] buffer


@dataclass
class ScoringStats:
    """Work done by the last loglikelihood call: what the benchmark prints."""

    requests: int = 0
    unique_requests: int = 0
    rows: int = 0
    tokens: int = 0  # real tokens through the transformer (each shared prefix once)
    padded_tokens: int = 0  # rows x padded length, summed over batches
    scored_positions: int = 0  # positions that went through the LM head
    batches: int = 0
    oom_retries: int = 0
    tokenize_s: float = 0.0
    forward_s: float = 0.0


@dataclass
class _Row:
    """One packed sequence: a shared prefix (segment 0) then each member's own suffix."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    scored: list[tuple[int, list[int], tuple]] = field(default_factory=list)  # (request, indices, targets)


def _truncate(ctx: tuple, cont: tuple) -> tuple[tuple, tuple]:
    """HFLM's left truncation: input is (ctx + cont)[-(MAX_LENGTH + 1):][:-1]."""
    whole = (ctx + cont)[-(MAX_LENGTH + 1):]
    return whole[: len(whole) - len(cont)], cont


def _common_prefix(seqs: list[tuple]) -> int:
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


def _pack(members: list[int], pairs: list[tuple[tuple, tuple]]) -> list[_Row]:
    """Rows for one document's requests: one row around their common prefix when they share one."""
    inputs = [(pairs[m][0] + pairs[m][1])[:-1] for m in members]
    shared = min(_common_prefix(inputs), min(len(pairs[m][0]) for m in members))
    if shared == 0 and len(members) > 1:
        return [row for m in members for row in _pack([m], pairs)]
    row = _Row(list(inputs[0][:shared]), list(range(shared)), [0] * shared)
    for k, (m, x) in enumerate(zip(members, inputs), start=1):
        start, ctx_len = len(row.tokens), len(pairs[m][0])
        row.tokens += x[shared:]
        row.positions += range(shared, len(x))
        row.segments += [k] * (len(x) - shared)
        # logits at input position j predict token j + 1: positions ctx_len-1 .. len(x)-1 are scored
        idx = [j if j < shared else start + j - shared for j in range(ctx_len - 1, len(x))]
        row.scored.append((m, idx, pairs[m][1]))
    return [row]


def plan_rows(pairs: list[tuple[tuple, tuple]], groups: list[list[int]]) -> list[_Row]:
    """Packed rows, longest first, for unique (ctx, cont) token pairs grouped by document."""
    rows = [row for members in groups for row in _pack(members, pairs)]
    return sorted(rows, key=lambda r: -len(r.tokens))


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


@register_model("evalsuite-fast")
class FastLM(LM):
    """lm-eval LM over a loaded HF causal LM; loglikelihood only (all evalsuite's tasks need)."""

    def __init__(self, model, tokenizer, batch_size="auto", token_budget: int | None = None,
                 token_cache: TokenCache | None = None):
        super().__init__()
        if model.config._attn_implementation != "sdpa":  # PyTorch SDPA, also for the tree mask
            model.set_attn_implementation("sdpa")
        self.model, self.tokenizer = model.eval(), tokenizer
        self._device = next(model.parameters()).device
        auto = str(batch_size).startswith("auto")
        self.max_rows = None if auto else int(batch_size)
        default = GPU_TOKEN_BUDGET if self._device.type == "cuda" else CPU_TOKEN_BUDGET
        self.token_budget = int(token_budget or default)
        self.token_cache = token_cache if token_cache is not None else shared_token_cache(tokenizer)
        self.stats = ScoringStats()

    @property
    def device(self):
        return self._device

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self.stats = ScoringStats(requests=len(requests))
        start = time.perf_counter()
        rows, n_unique, where = self.plan(requests)
        self.stats.tokenize_s = time.perf_counter() - start
        scores = self._score_rows(rows, n_unique)
        self.stats.forward_s = time.perf_counter() - start - self.stats.tokenize_s
        results = [scores[u] for u in where]
        for req, answer in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", tuple(req.args), answer)
        return results

    def plan(self, requests) -> tuple[list[_Row], int, list[int]]:
        """(packed rows longest first, number of unique requests, request -> unique index)."""
        encoded = self.token_cache.encode(self.tokenizer, [tuple(r.args) for r in requests])
        pairs, groups, where = self._dedupe(requests, encoded)
        return plan_rows(pairs, groups), len(pairs), where

    def _dedupe(self, requests, encoded):
        """Unique truncated token pairs, grouped by (task, document); request -> unique index."""
        index: dict[tuple, int] = {}
        pairs, groups, by_doc, where = [], [], {}, []
        for req, (ctx, cont) in zip(requests, encoded):
            key = _truncate(ctx, cont)
            if key not in index:
                index[key] = len(pairs)
                pairs.append(key)
                doc = (req.task_name, req.doc_id) if req.doc_id is not None else ("", req.args[0])
                # a truncated request is its own row: its kept tokens differ from its siblings'
                doc = doc if len(ctx) + len(cont) <= MAX_LENGTH + 1 else ("truncated", index[key])
                if doc not in by_doc:
                    by_doc[doc] = len(groups)
                    groups.append([])
                groups[by_doc[doc]].append(index[key])
            where.append(index[key])
        self.stats.unique_requests = len(pairs)
        return pairs, groups, where

    def _score_rows(self, rows: list[_Row], n: int) -> list[tuple[float, bool]]:
        """Run the rows in token-budget batches; halve the budget and retry on out-of-memory."""
        scores: list = [None] * n
        self.stats.rows, i = len(rows), 0
        while i < len(rows):
            width = len(rows[i].tokens)  # rows are longest first: the first sets the padding
            take = max(1, min(len(rows) - i, self.token_budget // max(width, 1), self.max_rows or len(rows)))
            try:
                for req, answer in self._run_batch(rows[i:i + take]):
                    scores[req] = answer
            except Exception as exc:
                if not _is_oom(exc) or take == 1:
                    raise
                self._free_memory()
                self.token_budget = max(1, min(self.token_budget, take * width) // 2)
                self.stats.oom_retries += 1
                continue
            self.stats.batches += 1
            self.stats.padded_tokens += take * width
            i += take
        return scores

    def _free_memory(self) -> None:
        import torch

        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _run_batch(self, rows: list[_Row]) -> list[tuple[int, tuple[float, bool]]]:
        import torch

        ids, positions, mask = self._inputs(rows)
        with torch.inference_mode():
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                           use_cache=False).last_hidden_state
            row_idx, col_idx, targets, owner, owners = self._scored_index(rows)
            logprob, wrong = self._head(hidden[row_idx, col_idx], targets)
            sums = torch.zeros(len(owners), dtype=torch.float32, device=self._device).index_add_(0, owner, logprob)
            misses = torch.zeros(len(owners), device=self._device).index_add_(0, owner, wrong)
        self.stats.tokens += sum(len(r.tokens) for r in rows)
        self.stats.scored_positions += len(targets)
        return [(req, (float(s), bool(w == 0))) for req, s, w in zip(owners, sums.tolist(), misses.tolist())]

    def _inputs(self, rows: list[_Row]):
        """Right-padded ids and positions, and the tree mask (None when plain causal is exact)."""
        import torch

        width = len(rows[0].tokens)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        positions = torch.zeros(len(rows), width, dtype=torch.long)
        segments = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: padding
        for r, row in enumerate(rows):
            n = len(row.tokens)
            ids[r, :n], positions[r, :n] = torch.tensor(row.tokens), torch.tensor(row.positions)
            segments[r, :n] = torch.tensor(row.segments)
        mask = None
        if (segments > 0).any():  # a query sees the prefix and its own segment, causally
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            seen = (segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None])
            mask = (causal & seen)[:, None].to(self._device)
        return ids.to(self._device), positions.to(self._device), mask

    def _scored_index(self, rows: list[_Row]):
        import torch

        row_idx, col_idx, targets, owner, owners = [], [], [], [], []
        for r, row in enumerate(rows):
            for req, idx, target in row.scored:
                row_idx += [r] * len(idx)
                col_idx += idx
                targets += target
                owner += [len(owners)] * len(idx)
                owners.append(req)
        as_tensor = lambda xs: torch.tensor(xs, dtype=torch.long, device=self._device)  # noqa: E731
        return as_tensor(row_idx), as_tensor(col_idx), as_tensor(targets), as_tensor(owner), owners

    def _head(self, hidden, targets):
        """Per-position log-prob of the target (float32) and 1.0 where argmax is not the target."""
        import torch

        head = self.model.get_output_embeddings()
        logprob, wrong = [], []
        for start in range(0, len(targets), HEAD_CHUNK):
            logits = head(hidden[start:start + HEAD_CHUNK])
            tgt = targets[start:start + HEAD_CHUNK]
            scores = logits.float()  # log p(target) = logit - logsumexp: no [positions, vocab] output
            logprob.append(scores.gather(1, tgt[:, None])[:, 0] - torch.logsumexp(scores, dim=-1))
            wrong.append((logits.argmax(dim=-1) != tgt).float())
        return torch.cat(logprob), torch.cat(wrong)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "evalsuite-fast scores loglikelihood requests only (lambada, piqa, winogrande, arc, sciq); "
            "use --backend hf for perplexity tasks (loglikelihood_rolling)")

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "evalsuite-fast does not generate text; use --backend hf for generative tasks")
