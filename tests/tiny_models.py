"""Tiny random models of many architectures, each with a tokenizer of its family.

The models are built offline from transformers' config classes (2 layers, width 32), with a
short context (CONTEXT) so that HFLM's left truncation happens on real documents, and a short
sliding window (WINDOW) where the architecture has one, so that it matters.

Tokenizers: the real GPT-NeoX-20B tokenizer ships with the project (data/tokenizer); the other
families' real tokenizers do not ship offline, so each is a small BPE trained here on ARC-Easy's
train split, built the way its family's tokenizer.json is, because that is where they differ for
lm-eval: whether a BOS token is added, whether the first word gets a prefix space, whether there
is a BOS token at all.
- byte-level: GPT-2's (byte-level BPE, `<|endoftext|>` is BOS and EOS, nothing added); GPT-NeoX,
  GPT-J, Phi, OLMo and OLMo 2 use this family
- byte-level-bos: OPT's (byte-level BPE that adds `</s>` in front of every text)
- no-bos: Qwen's (byte-level BPE with no BOS token: lm-eval's empty-context prefix is the EOS)
- llama: Llama 2's and Mistral's (SentencePiece-style BPE with byte fallback, "▁" for spaces, a
  prefix space before the first word, `<s>` added)
- gemma: Gemma's (the same without the prefix space; `<bos>` added)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.lmeval.backends import load_tokenizer
from evalsuite.paths import TASK_DATA_DIR, TOKENIZER_DIR

CONTEXT = 256  # every model's max_position_embeddings (n_positions): lm-eval truncates to it
WINDOW = 48  # sliding windows, where an architecture has them
VOCAB = 800  # trained tokenizers


@dataclass(frozen=True)
class Arch:
    config: str  # the transformers config class
    tokenizer: str  # a family above, or "gpt-neox" (the real one)
    settings: dict[str, Any]  # the config's own names for the shape


_SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=CONTEXT)
_GQA = dict(_SHAPE, num_key_value_heads=2)
_GEMMA = dict(_SHAPE, num_key_value_heads=1, head_dim=8)
# Gemma 2 and 3: soft-capping small enough to change every score (attention's and the final logits')
_CAPPED = dict(_GEMMA, sliding_window=WINDOW, final_logit_softcapping=3.0)

# The fast backend's supported architectures (lmeval/architectures.py SUPPORTED), by model class.
SUPPORTED = {
    # GPT-NeoX-20B's tokenizer is byte-level too; with the real one: tests/test_fast_backend.py
    "GPTNeoXForCausalLM": Arch("GPTNeoXConfig", "byte-level", dict(_SHAPE, rotary_pct=0.25,
                                                                   use_parallel_residual=True)),
    "GPT2LMHeadModel": Arch("GPT2Config", "byte-level", dict(n_embd=32, n_layer=2, n_head=4, n_positions=CONTEXT)),
    "GPTJForCausalLM": Arch("GPTJConfig", "byte-level", dict(n_embd=32, n_layer=2, n_head=4, rotary_dim=4,
                                                             n_positions=CONTEXT)),
    "OPTForCausalLM": Arch("OPTConfig", "byte-level-bos", dict(_SHAPE, ffn_dim=64, word_embed_proj_dim=16)),
    "LlamaForCausalLM": Arch("LlamaConfig", "llama", _GQA),
    "MistralForCausalLM": Arch("MistralConfig", "llama", dict(_GQA, sliding_window=WINDOW)),
    "Qwen2ForCausalLM": Arch("Qwen2Config", "no-bos", dict(_GQA, use_sliding_window=True, sliding_window=WINDOW,
                                                          max_window_layers=1)),  # layer 0 full, layer 1 windowed
    "Qwen3ForCausalLM": Arch("Qwen3Config", "no-bos", dict(_GQA, head_dim=8)),
    "OlmoForCausalLM": Arch("OlmoConfig", "byte-level", _SHAPE),
    "Olmo2ForCausalLM": Arch("Olmo2Config", "byte-level", _SHAPE),
    "GemmaForCausalLM": Arch("GemmaConfig", "gemma", _GEMMA),
    "Gemma2ForCausalLM": Arch("Gemma2Config", "gemma", dict(_CAPPED, attn_logit_softcapping=2.0)),
    "Gemma3ForCausalLM": Arch("Gemma3TextConfig", "gemma", dict(_CAPPED, layer_types=["sliding_attention",
                                                                                       "full_attention"])),
    "PhiForCausalLM": Arch("PhiConfig", "byte-level", dict(_SHAPE, partial_rotary_factor=0.5)),
    "Phi3ForCausalLM": Arch("Phi3Config", "llama", dict(_SHAPE, sliding_window=WINDOW)),
}

# Architectures the fast backend must refuse: recurrent (no attention mask at all), ALiBi
# (positions from the attention mask), and GPT-Neo, whose eager attention and local layers gave
# wrong numbers through the tree mask before the rule existed.
REFUSED = {
    "MambaForCausalLM": Arch("MambaConfig", "byte-level", dict(hidden_size=32, num_hidden_layers=2, state_size=4)),
    "RwkvForCausalLM": Arch("RwkvConfig", "byte-level", dict(hidden_size=32, num_hidden_layers=2,
                                                           attention_hidden_size=32, intermediate_size=64)),
    "BloomForCausalLM": Arch("BloomConfig", "byte-level", dict(hidden_size=32, n_layer=2, n_head=4)),
    "MptForCausalLM": Arch("MptConfig", "byte-level", dict(d_model=32, n_layers=2, n_heads=4)),
    "GPTNeoForCausalLM": Arch("GPTNeoConfig", "byte-level", dict(hidden_size=32, num_layers=2, num_heads=4,
                                                               attention_types=[[["global", "local"], 1]])),
}


# Supported classes with a setting the parity tests do not cover: refused as well.
REFUSED_SETTINGS = {
    "Gemma3ForCausalLM with bidirectional attention": Arch(
        "Gemma3TextConfig", "byte-level", dict(_GEMMA, use_bidirectional_attention=True)),
    "LlamaForCausalLM with dynamic rotary scaling": Arch(
        "LlamaConfig", "byte-level", dict(_GQA, rope_parameters=dict(rope_type="dynamic", factor=2.0, rope_theta=1e4))),
}


def build(arch: Arch, tok, seed: int = 0, scale: float = 4.0, **overrides):
    """A randomly initialised causal LM of `arch` for `tok`'s vocabulary, in eval mode; 2D weights
    scaled up so next-token distributions are peaked and choices rarely tie."""
    import transformers

    ids = {f"{name}_token_id": getattr(tok, f"{name}_token_id") for name in ("bos", "eos", "pad")}
    config = getattr(transformers, arch.config)(vocab_size=len(tok), **ids, **{**arch.settings, **overrides})
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(scale)
    return model


def tokenizer(family: str, folder: Path):
    """The family's tokenizer, saved to `folder` and loaded back as a sweep loads one."""
    if family == "gpt-neox":
        return load_tokenizer(TOKENIZER_DIR)
    from transformers import PreTrainedTokenizerFast

    backend, special = _train(family)
    PreTrainedTokenizerFast(tokenizer_object=backend, **special).save_pretrained(folder)
    return load_tokenizer(folder)


def _texts() -> list[str]:
    rows = [json.loads(line) for line in (TASK_DATA_DIR / "arc_easy" / "train.jsonl").open()]
    return [f"Question: {r['question']}\nAnswer: {' '.join(r['choices']['text'])}" for r in rows]


def _train(family: str):
    """(a trained `tokenizers` Tokenizer, its special tokens as PreTrainedTokenizerFast names them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if family in ("byte-level", "byte-level-bos", "no-bos"):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        marks = ["<pad>", "</s>"] if family == "byte-level-bos" else ["<|endoftext|>"]
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # SentencePiece-style: "▁" for spaces, byte fallback for unseen characters
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first" if family == "llama" else "never")
        tok.decoder = decoders.Sequence([decoders.Metaspace(prepend_scheme="first" if family == "llama" else "never"),
                                         decoders.ByteFallback(), decoders.Fuse()])
        marks = ["<unk>", "<s>", "</s>"] if family == "llama" else ["<pad>", "<eos>", "<bos>", "<unk>"]
        marks += [f"<0x{b:02X}>" for b in range(256)]
        alphabet = []
    tok.train_from_iterator(_texts(), trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=marks,
                                                          initial_alphabet=alphabet, show_progress=False))
    special = {
        "byte-level": dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"),
        "no-bos": dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
        "byte-level-bos": dict(bos_token="</s>", eos_token="</s>", pad_token="<pad>"),
        "llama": dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
        "gemma": dict(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"),
    }[family]
    bos = special.get("bos_token")
    if family != "byte-level" and bos:  # these families add their BOS to every text
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    return tok, special
