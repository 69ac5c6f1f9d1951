"""Which model architectures the fast backend scores exactly, and what it must know about each.

The fast backend (fast_backend.py) does not call the model as lm-eval's `hf` backend does. It runs
the model's body (`base_model`) on packed rows with its own position ids and a 4D tree attention
mask, then the LM head (`get_output_embeddings()`) at the scored positions only. That gives
HFLM's numbers only where the model
- places tokens by the position ids it is given (rotary, or GPT-2's and OPT's learned positions),
  not by the attention mask (ALiBi: BLOOM, MPT) nor by a recurrent state (Mamba, RWKV);
- uses a 4D mask as given (transformers' masking_utils passes it through, sliding windows
  included, so a request longer than a window gets its own row, scored with the model's own
  masks: `sliding_window`); SDPA takes the mask as booleans, eager attention adds it;
- does nothing between the body and the head but what `FastLM` repeats (`softcap`: Gemma 2's
  final-logit soft-capping);
- and is left-truncated where HFLM truncates it: lm-eval's own `resolve_max_length` rule.

The rule is by tested capability: `SUPPORTED` lists the transformers classes whose parity with
HFLM (every loglikelihood, is_greedy, acc and acc_norm) tests/test_architectures.py checks on
real task data. A model of any other class, remote code included, or one of these with a setting
the tests do not cover (`_unsupported_setting`), is refused by `FastLM` and scored by lm-eval's
`hf` backend instead (backends.choose_backend): slower, never a wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass

# class -> what differs from GPT-NeoX, each covered by a parity test
SUPPORTED = {
    "GPTNeoXForCausalLM": "Pythia: partial rotary, parallel residual",
    "GPT2LMHeadModel": "learned absolute positions, tied head, 1,024-token context",
    "GPTJForCausalLM": "interleaved partial rotary, float32 logits",
    "OPTForCausalLM": "learned positions offset by 2, BOS added, tied head",
    "LlamaForCausalLM": "rotary, RMSNorm, grouped-query attention, BOS added",
    "MistralForCausalLM": "a sliding window on every layer",
    "Qwen2ForCausalLM": "biased q/k/v, sliding windows on some layers, no BOS token",
    "Qwen3ForCausalLM": "q/k norms",
    "OlmoForCausalLM": "non-parametric layer norms",
    "Olmo2ForCausalLM": "q/k norms, norms after each block",
    "GemmaForCausalLM": "scaled embeddings, tied head, BOS added",
    "Gemma2ForCausalLM": "eager attention, attention and final-logit soft-capping, local/global layers",
    "Gemma3ForCausalLM": "q/k norms, sliding-window layers, optional final-logit soft-capping",
    "PhiForCausalLM": "partial rotary, parallel block, biased head",
    "Phi3ForCausalLM": "fused q/k/v, a sliding window",
}


class UnsupportedArchitecture(ValueError):
    """The fast backend cannot score this model exactly (lm-eval's `hf` backend can)."""


@dataclass(frozen=True)
class ModelTraits:
    """What the fast backend does differently per model, read once when it is given one."""

    max_length: int  # HFLM's left-truncation limit: inputs keep their last max_length tokens
    window: int | None  # the smallest sliding attention window of any layer, or None
    softcap: float | None  # final-logit soft-capping: cap * tanh(logits / cap)
    additive_mask: bool  # eager attention adds the mask (0 or the dtype's minimum); SDPA takes booleans


def fallback_reason(model) -> str | None:
    """Why the fast backend cannot score `model` exactly, or None when it can."""
    cls = type(model)
    if not cls.__module__.startswith("transformers.models.") or cls.__name__ not in SUPPORTED:
        return f"{cls.__name__} (not one of the architectures its parity tests cover)"
    setting = _unsupported_setting(model.config)
    return f"{cls.__name__} with {setting}" if setting else None


def _unsupported_setting(config) -> str | None:
    """Settings of a supported class that change what the tests checked."""
    if getattr(config, "use_bidirectional_attention", False):  # Gemma 3 as an embedding model
        return "bidirectional attention"
    # These rescale the rotary frequencies by the longest position in each forward pass (and
    # "dynamic" keeps state between passes): packed rows and HFLM's batches would differ.
    scaled = _rope_types(config) & {"dynamic", "longrope"}
    return f"{sorted(scaled)[0]} rotary scaling" if scaled else None


def _rope_types(config) -> set[str]:
    """The config's rotary types: transformers 5's rope_parameters (per layer type for some
    models) or 4.x's rope_scaling."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    layers = [value for value in rope.values() if isinstance(value, dict)] or [rope]
    return {str(layer.get("rope_type") or layer.get("type")) for layer in layers}


def prepare(model, tokenizer) -> ModelTraits:
    """The model's traits, its attention set to PyTorch SDPA where it has it (eager otherwise);
    raises UnsupportedArchitecture for a model the fast backend cannot score exactly."""
    reason = fallback_reason(model)
    if reason:
        raise UnsupportedArchitecture(f"the fast backend cannot score {reason} exactly; use lm-eval's hf backend")
    if model.config._attn_implementation != "sdpa" and model._supports_sdpa:
        model.set_attn_implementation("sdpa")
    config = model.config
    window = getattr(config, "sliding_window", None)  # set (not None) only where some layer uses it
    softcap = getattr(config, "final_logit_softcapping", None)
    return ModelTraits(max_length=max_length(model, tokenizer), window=int(window) if window else None,
                       softcap=float(softcap) if softcap else None,
                       additive_mask=model.config._attn_implementation != "sdpa")


def max_length(model, tokenizer) -> int:
    """HFLM's max_length for this model: the config's context (n_positions, max_position_embeddings
    or n_ctx), else the tokenizer's, else 2048: lm-eval's own rule, called as HFLM calls it."""
    from lm_eval.models.utils import DEFAULT_MAX_LENGTH, resolve_max_length

    return resolve_max_length(model.config, tokenizer, default=DEFAULT_MAX_LENGTH)


# Attention kernels. A boolean attn_mask rules out FlashAttention, which takes no arbitrary mask:
# on CUDA, SDPA runs batches with a tree mask on the memory-efficient kernel, cuDNN's (newer
# PyTorch on recent GPUs) or the math fallback; batches of one-member rows pass no mask, and
# flash can run there. Masked kernels have had silent numerical bugs in some PyTorch releases.
# The tests compare against lm-eval's `hf` on CPU kernels only; benchmarks/bench_fp16.py repeats
# the comparison on CUDA with each kernel forced, which is what vouches for a given GPU + PyTorch.
def tree_mask(segments, traits: ModelTraits, dtype):
    """[rows, 1, width, width]: a query sees earlier keys of the shared prefix (segment 0) and of
    its own segment; padding (-1) sees only padding, so no query row is fully masked. Booleans
    for SDPA; for eager attention, which adds the mask to its scores, 0 where seen and the
    dtype's minimum elsewhere (what transformers' own eager masks hold)."""
    import torch

    width = segments.shape[1]
    index = torch.arange(width, dtype=torch.long, device=segments.device)
    causal = index[None, :] <= index[:, None]  # [query, key]
    seen = ((segments[:, None, :] == 0) | (segments[:, None, :] == segments[:, :, None]))
    mask = (causal & seen)[:, None]
    if not traits.additive_mask:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def final_logits(logits, traits: ModelTraits):
    """What the model's own forward does to the head's output: Gemma 2's soft-capping, in the
    model's dtype and in its order (divide, tanh, multiply)."""
    import torch

    if traits.softcap is None:
        return logits
    return torch.tanh(logits / traits.softcap) * traits.softcap
