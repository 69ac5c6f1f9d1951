"""Tokenization of lm-eval loglikelihood requests, exactly as lm-eval's HFLM does it, cached.

Owns `TokenCache`: (context, continuation) -> (context tokens, continuation tokens), reproducing
TemplateLM.loglikelihood + _encode_pair + HFLM.tok_encode (trailing whitespace of the context
moves to the continuation; context and whole string are encoded and the continuation is
whole[len(context):]; an empty context becomes the BOS/EOS token; strings that start with BOS
are encoded without special tokens), batched through the fast tokenizer. All Pythia
checkpoints share one tokenizer, so a sweep keeps one cache and tokenizes each task once:
`shared_token_cache(tokenizer)` is that process-wide cache (what FastLM uses by default).
"""

from __future__ import annotations


class TokenCache:
    """(context, continuation) -> (context tokens, continuation tokens), encoded exactly as
    lm-eval's HFLM does; one cache per tokenizer, reused across checkpoints."""

    def __init__(self):
        self._pairs: dict[tuple[str, str], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._fingerprint = None

    def __len__(self) -> int:
        return len(self._pairs)

    def encode(self, tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[tuple, tuple]]:
        fingerprint = _fingerprint(tokenizer)
        if self._fingerprint not in (None, fingerprint):
            raise ValueError(f"TokenCache holds tokens of {self._fingerprint}, not {fingerprint}")
        self._fingerprint = fingerprint
        missing = [p for p in dict.fromkeys(pairs) if p not in self._pairs]
        if missing:
            self._pairs.update(zip(missing, _encode_pairs(tokenizer, missing)))
        return [self._pairs[p] for p in pairs]


_SHARED_CACHES: dict[tuple, TokenCache] = {}


def shared_token_cache(tokenizer) -> TokenCache:
    """The process-wide cache for this tokenizer: all Pythia checkpoints share one."""
    return _SHARED_CACHES.setdefault(_fingerprint(tokenizer), TokenCache())


def _fingerprint(tokenizer) -> tuple:
    return (type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer))


def _encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[tuple, tuple]]:
    """TemplateLM.loglikelihood + _encode_pair + HFLM.tok_encode, batched through the tokenizer."""
    prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    bos_str = tokenizer.decode(prefix_id)
    split = []  # (context without trailing whitespace, continuation with it)
    for context, continuation in pairs:
        n_spaces = len(context) - len(context.rstrip())
        split.append((context[:-n_spaces], context[-n_spaces:] + continuation) if n_spaces else (context, continuation))
    real = [i for i, (c, _) in enumerate(pairs) if c != ""]
    ctx_enc = _batch_encode(tokenizer, [split[i][0] for i in real], bos_str)
    whole_enc = _batch_encode(tokenizer, [split[i][0] + split[i][1] for i in real], bos_str)
    out: list = [None] * len(pairs)
    for i, ctx, whole in zip(real, ctx_enc, whole_enc):
        out[i] = (tuple(ctx), tuple(whole[len(ctx):]))
    empty = [i for i, (c, _) in enumerate(pairs) if c == ""]
    conts = tokenizer([pairs[i][1] for i in empty], add_special_tokens=False)["input_ids"] if empty else []
    for i, cont in zip(empty, conts):  # empty context: the BOS/EOS token is the context
        out[i] = ((prefix_id,), tuple(cont)) if cont[0] != prefix_id else (tuple(cont[:1]), tuple(cont[1:]))
    return out


def _batch_encode(tokenizer, strings: list[str], bos_str: str) -> list[list[int]]:
    """HFLM.tok_encode on each string: special tokens off when the string starts with BOS."""
    out: list = [None] * len(strings)
    for has_bos in (False, True):
        idx = [i for i, s in enumerate(strings) if s.startswith(bos_str) == has_bos]
        if idx:
            kwargs = {"add_special_tokens": False} if has_bos else {}
            for i, ids in zip(idx, tokenizer([strings[i] for i in idx], **kwargs)["input_ids"]):
                out[i] = ids
    return out
