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
- Batches cut by a token budget over length-sorted rows; on out-of-memory (the allocator's, or
  cuBLAS/cuDNN failing to allocate) the budget halves and the batch is retried.
- The accelerator is never waited for between batches: each batch's integers go to the device
  in one pinned, non-blocking copy, the tree mask is built there from segment ids, and
  per-request sums stay there until one read-back at the end of `loglikelihood`. The sums are
  deterministic (a fixed-order gather + sum, not index_add_), so reruns give the same numbers.
- Every tensor created here has an explicit dtype and device: transformers sets torch's
  process-wide default dtype to float16 while the prefetch thread loads a float16 checkpoint.
- Tokenization through a `TokenCache` (evalsuite/token_cache.py): a sweep tokenizes each task
  once, not once per checkpoint. By default every FastLM in a process shares one cache per
  tokenizer (`shared_token_cache`); pass `token_cache=TokenCache()` to isolate one.
- Architectures: only those lmeval/architectures.py lists (each checked against HFLM by the
  parity tests); any other model raises UnsupportedArchitecture, and a sweep scores it with
  lm-eval's `hf` backend instead. What differs per architecture (truncation length, sliding
  windows, the mask's form, final-logit soft-capping) is read from the model there.

API: `FastLM(model=<HF causal LM>, tokenizer=<HF tokenizer>, batch_size="auto" | int,
token_budget=None, token_cache=None)`. `batch_size` "auto" uses the device's default token
budget; an int also caps the rows per batch. The model is used in the dtype it was loaded in
(lmeval/checkpoints.py loads float16 on GPU, as EleutherAI's published runs); attention is PyTorch
SDPA where the model has it (eager attention otherwise).
After a call, `lm.stats` (a `ScoringStats`) says how much work was done. loglikelihood_rolling
and generate_until raise NotImplementedError (evalsuite's five tasks use neither).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from evalsuite.lmeval import architectures
from evalsuite.lmeval.architectures import UnsupportedArchitecture
from evalsuite.lmeval.rows import Row, needs_model_mask, plan_rows, truncate
from evalsuite.lmeval.token_cache import TokenCache, shared_token_cache

__all__ = ["FastLM", "ScoringStats", "TokenCache", "UnsupportedArchitecture", "shared_token_cache", "plan_rows"]

CPU_TOKEN_BUDGET = 8192  # tokens (rows x padded length) per forward batch
GPU_TOKEN_BUDGET = 65536
# Scored positions per LM-head matmul, which bounds the [positions, vocab] buffer. On a CPU a
# small chunk keeps the log-softmax's passes over it in cache (128 positions x 50,304 x 4 bytes =
# 26 MB): 2-3x faster than 1024 at the 14m shape; a GPU wants large matmuls.
HEAD_CHUNK = {"cpu": 128, "cuda": 1024}


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


# What torch raises when the accelerator runs out of memory. The allocator's own error is a
# torch.OutOfMemoryError ("CUDA out of memory"; "CUDA error: out of memory" when a raw CUDA call
# fails). cuBLAS and cuDNN allocate workspace outside PyTorch's allocator and report failure
# through their status codes, formatted by ATen/cuda/Exceptions.h as "CUDA error:
# CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "cuDNN error:
# CUDNN_STATUS_ALLOC_FAILED" (cuDNN 8) and "cuDNN error:
# CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED" (cuDNN 9; also ..._HOST_...). On the host,
# "DefaultCPUAllocator: can't allocate memory". A smaller batch helps in all of these.
_OOM_MARKERS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                "cudnn_status_internal_error_device_allocation_failed",
                "cudnn_status_internal_error_host_allocation_failed", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the errors a smaller batch can avoid: the accelerator or a CUDA library out of memory."""
    import torch

    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or any(m in text for m in _OOM_MARKERS)


@dataclass
class _BatchInputs:
    """One batch on the device, from one host-to-device copy (see FastLM._to_device)."""

    ids: object  # [rows, width] token ids
    positions: object  # [rows, width] position ids (the tree restarts them per continuation)
    mask: object  # [rows, 1, width, width] tree mask, or None: the model's own (plain causal) masks
    scored: object  # [P] flat index (row * width + column) of each scored position
    targets: object  # [P] the token each scored position must predict
    lengths: object  # [requests] scored positions per request, in order (they are contiguous)
    longest: int  # max(lengths), known on the host
    owners: list[int]  # the unique request index of each request in the batch (host)


@register_model("evalsuite-fast")
class FastLM(LM):
    """lm-eval LM over a loaded HF causal LM; loglikelihood only (all evalsuite's tasks need)."""

    def __init__(self, model, tokenizer, batch_size="auto", token_budget: int | None = None,
                 token_cache: TokenCache | None = None):
        super().__init__()
        self.traits = architectures.prepare(model, tokenizer)  # or UnsupportedArchitecture
        self.model, self.tokenizer = model.eval(), tokenizer
        parameter = next(model.parameters())
        self._device, self._dtype = parameter.device, parameter.dtype
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

    def plan(self, requests) -> tuple[list[Row], int, list[int]]:
        """(packed rows longest first, number of unique requests, request -> unique index)."""
        encoded = self.token_cache.encode(self.tokenizer, [tuple(r.args) for r in requests])
        pairs, groups, where = self._dedupe(requests, encoded)
        return plan_rows(pairs, groups, self.traits.window), len(pairs), where

    def _dedupe(self, requests, encoded):
        """Unique truncated token pairs, grouped by (task, document); request -> unique index."""
        index: dict[tuple, int] = {}
        pairs: list[tuple[tuple, tuple]] = []
        groups: list[list[int]] = []
        by_doc: dict[tuple, int] = {}
        where: list[int] = []
        max_length, window = self.traits.max_length, self.traits.window
        for req, (ctx, cont) in zip(requests, encoded):
            key = truncate(ctx, cont, max_length)
            if key not in index:
                index[key] = len(pairs)
                pairs.append(key)
                doc = (req.task_name, req.doc_id) if req.doc_id is not None else ("", req.args[0])
                # a truncated request is its own row: its kept tokens differ from its siblings';
                # so is one that reaches the sliding window: only the model's own masks apply it
                alone = len(ctx) + len(cont) > max_length + 1 or (
                    window is not None and len(key[0]) + len(key[1]) - 1 >= window)
                doc = ("alone", index[key]) if alone else doc
                if doc not in by_doc:
                    by_doc[doc] = len(groups)
                    groups.append([])
                groups[by_doc[doc]].append(index[key])
            where.append(index[key])
        self.stats.unique_requests = len(pairs)
        return pairs, groups, where

    def _score_rows(self, rows: list[Row], n: int) -> list[tuple[float, bool]]:
        """Run the rows in token-budget batches; halve the budget and retry on out-of-memory.

        Each batch leaves its per-request sums on the device; they are read back once, at the
        end, so the host never waits for the accelerator between batches."""
        owners, sums, greedy = [], [], []
        self.stats.rows, i = len(rows), 0
        # rows that need the model's own masks come first; a batch never mixes them with the rest
        apart = sum(needs_model_mask(row, self.traits.window) for row in rows)
        while i < len(rows):
            width = len(rows[i].tokens)  # rows are longest first: the first sets the padding
            end = apart if i < apart else len(rows)
            take = max(1, min(end - i, self.token_budget // max(width, 1), self.max_rows or len(rows)))
            result = self._try_batch(rows[i:i + take])
            if result is None:  # out of memory; the failed batch's tensors are gone with its traceback
                self._free_memory()
                self.token_budget = max(1, min(self.token_budget, take * width) // 2)
                self.stats.oom_retries += 1
                continue
            owners += result[0]
            sums.append(result[1])
            greedy.append(result[2])
            self.stats.batches += 1
            self.stats.padded_tokens += take * width
            i += take
        return self._read_back(n, owners, sums, greedy)

    def _try_batch(self, rows: list[Row]):
        """`_run_batch(rows)`, or None when it ran out of memory and a smaller batch may fit."""
        try:
            return self._run_batch(rows)
        except Exception as exc:
            if not is_out_of_memory(exc) or len(rows) == 1:
                raise
        return None  # outside the except: the exception, its frames and their tensors are freed

    @staticmethod
    def _read_back(n: int, owners: list[int], sums: list, greedy: list) -> list[tuple[float, bool]]:
        """The one device-to-host copy of a loglikelihood call."""
        import torch

        scores: list = [None] * n
        if owners:
            values, exact = torch.cat(sums).tolist(), torch.cat(greedy).tolist()
            for req, value, is_greedy in zip(owners, values, exact):
                scores[req] = (value, is_greedy)
        return scores

    def _free_memory(self) -> None:
        import torch

        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _run_batch(self, rows: list[Row]):
        """(unique request indices, their loglikelihood sums, their is-greedy flags), the last two
        left on the device. Every tensor made here has an explicit dtype and device: transformers
        switches torch's process-wide default dtype while another thread loads a model."""
        import torch

        batch = self._to_device(rows)
        with torch.inference_mode():
            hidden = self.model.base_model(input_ids=batch.ids, attention_mask=batch.mask,
                                           position_ids=batch.positions, use_cache=False).last_hidden_state
            scored = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.scored)
            logprob, wrong = self._head(scored, batch.targets)
            sums, any_wrong = _per_request(logprob, wrong, batch.lengths, batch.longest)
        self.stats.tokens += sum(len(r.tokens) for r in rows)
        self.stats.scored_positions += len(logprob)
        return batch.owners, sums, ~any_wrong

    def _to_device(self, rows: list[Row]) -> _BatchInputs:
        """The batch's integers in ONE host buffer (pinned on CUDA), copied without blocking; the
        tree mask is then built on the device from the segment ids."""
        import torch

        width, n_rows = len(rows[0].tokens), len(rows)
        grid: list[list[int]] = [[], [], []]  # ids, positions, segments; right-padded (segment -1: padding)
        scored: list[int] = []
        targets: list[int] = []
        lengths: list[int] = []
        owners: list[int] = []
        for r, row in enumerate(rows):
            pad = width - len(row.tokens)
            grid[0] += row.tokens + [0] * pad
            grid[1] += row.positions + [0] * pad
            grid[2] += row.segments + [-1] * pad
            for req, idx, target in row.scored:
                scored += [r * width + j for j in idx]
                targets += target
                lengths.append(len(idx))
                owners.append(req)
        host = torch.tensor(grid[0] + grid[1] + grid[2] + scored + targets + lengths, dtype=torch.long)
        if self._device.type == "cuda":
            host = host.pin_memory()
        flat = host.to(self._device, non_blocking=True)
        cells, p = n_rows * width, len(scored)
        ids, positions, segments = (flat[k * cells:(k + 1) * cells].view(n_rows, width) for k in range(3))
        rest = flat[3 * cells:]
        # A row with one member is a plain causal sequence; a tree mask is needed only where a
        # row holds several continuations (decided from host data: no device sync).
        tree = any(len(row.scored) > 1 for row in rows)
        mask = architectures.tree_mask(segments, self.traits, self._dtype) if tree else None
        return _BatchInputs(ids=ids, positions=positions, mask=mask,
                            scored=rest[:p], targets=rest[p:2 * p], lengths=rest[2 * p:], longest=max(lengths),
                            owners=owners)

    def _head(self, hidden, targets):
        """Per-position log-prob of the target (float32) and True where argmax is not the target."""
        import torch

        head = self.model.get_output_embeddings()
        chunk = HEAD_CHUNK.get(self._device.type, HEAD_CHUNK["cuda"])
        logprob, wrong = [], []
        for start in range(0, len(targets), chunk):
            # HFLM's own formulation (log-softmax, then the target's entry and the argmax), in
            # float32 whatever the model's dtype; torch's fused log-softmax is also faster on a
            # CPU than logsumexp, which makes a temporary of every [positions, vocab] step.
            logits = architectures.final_logits(head(hidden[start:start + chunk]), self.traits)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            tgt = targets[start:start + chunk]
            logprob.append(logprobs.gather(1, tgt[:, None])[:, 0])
            wrong.append(_not_argmax(logprobs, tgt, logprob[-1]))
        return torch.cat(logprob), torch.cat(wrong)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "evalsuite-fast scores loglikelihood requests only (lambada, piqa, winogrande, arc, sciq); "
            "use --backend hf for perplexity tasks (loglikelihood_rolling)")

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "evalsuite-fast does not generate text; use --backend hf for generative tasks")


def _not_argmax(logprobs, targets, at_target):
    """`logprobs.argmax(-1) != targets`, exactly (first maximum on ties). On a CPU, argmax is a
    slow scalar loop (0.5 s a checkpoint at 14m, as much as the log-softmax), so a row's maximum
    (vectorised) rules out most rows and argmax runs only where the target's entry is the maximum.
    On a GPU argmax is cheap, and finding those rows would cost a host synchronisation."""
    if logprobs.device.type != "cpu":
        return logprobs.argmax(dim=-1) != targets
    wrong = at_target != logprobs.amax(dim=-1)
    top = (~wrong).nonzero()[:, 0]
    if len(top):
        wrong[top] = logprobs.index_select(0, top).argmax(dim=-1) != targets[top]
    return wrong


def _per_request(logprob, wrong, lengths, longest: int):
    """Per-request sums of `logprob` and any() of `wrong` over each request's consecutive
    positions. Deterministic: a gather into a [requests, longest] grid and a sum along rows, in
    a fixed order (index_add_ and float cumsum are not deterministic on CUDA)."""
    import torch

    steps = torch.arange(longest, dtype=torch.long, device=lengths.device)
    offsets = torch.cumsum(lengths, dim=0) - lengths  # an integer cumsum: exact and deterministic
    valid = steps[None, :] < lengths[:, None]
    index = (offsets[:, None] + steps[None, :]).clamp(max=len(logprob) - 1)  # padding reads a real slot...
    sums = torch.where(valid, logprob[index], logprob.new_zeros(())).sum(dim=1)  # ...and is zeroed here
    return sums, (wrong[index] & valid).any(dim=1)
