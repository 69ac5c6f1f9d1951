"""The Pythia suite: its 16 models, their sizes, and the 154 checkpoints each one publishes.

Numbers are the Pythia model card's table (total and non-embedding parameters, layers, width,
heads); `vocab` is the padded embedding size of each checkpoint's config.json. Also parses the
`--model` and `--steps` arguments of the CLI.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from evalsuite.errors import EvalsuiteError

TOKENS_PER_STEP = 2_097_152  # 1024 sequences of 2048 tokens per optimizer step
FINAL_STEP = 143_000  # the `main` revision


@dataclass(frozen=True)
class PythiaModel:
    name: str
    params: int
    non_embedding_params: int
    layers: int
    width: int
    heads: int
    vocab: int

    @property
    def repo_id(self) -> str:
        return f"EleutherAI/{self.name}"

    @property
    def deduped(self) -> bool:
        return self.name.endswith("-deduped")

    @property
    def size(self) -> str:
        """'1.4b' for both pythia-1.4b and pythia-1.4b-deduped."""
        return self.name.removeprefix("pythia-").removesuffix("-deduped")


_SIZES = [  # size, params, non-embedding params, layers, width, heads, vocab
    ("70m", 70_426_624, 18_915_328, 6, 512, 8, 50304),
    ("160m", 162_322_944, 85_056_000, 12, 768, 12, 50304),
    ("410m", 405_334_016, 302_311_424, 24, 1024, 16, 50304),
    ("1b", 1_011_781_632, 805_736_448, 16, 2048, 8, 50304),
    ("1.4b", 1_414_647_808, 1_208_602_624, 24, 2048, 16, 50304),
    ("2.8b", 2_775_208_960, 2_517_652_480, 32, 2560, 32, 50304),
    ("6.9b", 6_857_302_016, 6_444_163_072, 32, 4096, 32, 50432),
    ("12b", 11_846_072_320, 11_327_027_200, 36, 5120, 40, 50688),
]

MODELS: dict[str, PythiaModel] = {
    f"pythia-{size}{suffix}": PythiaModel(f"pythia-{size}{suffix}", *numbers)
    for size, *numbers in _SIZES
    for suffix in ("", "-deduped")
}

LOG_STEPS = [0] + [2**i for i in range(10)]  # 0, 1, 2, 4 ... 512
ALL_STEPS = LOG_STEPS + list(range(1000, FINAL_STEP + 1, 1000))  # 154 checkpoints
PUBLISHED_STEPS = LOG_STEPS + [1000, 3000] + list(range(13_000, FINAL_STEP + 1, 10_000))


def tokens_seen(step: int) -> int:
    return step * TOKENS_PER_STEP


def revision(step: int) -> str:
    """The Hugging Face revision (git branch) holding a checkpoint."""
    return f"step{step}"


def parse_models(text: str, known: Collection[str] = tuple(MODELS)) -> list[str]:
    """`pythia-70m`, `pythia-70m,pythia-160m-deduped` or `all` -> model names, validated against
    `known` (default: the 16 Pythia models); `all` is every Pythia model among them."""
    if text.strip() == "all":
        return [name for name in known if name in MODELS]
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise EvalsuiteError("--model is empty: give a model name, a comma list, or 'all'")
    for name in names:
        if name not in known:
            valid = ", ".join(known)
            raise EvalsuiteError(f"unknown model {name!r}; valid: {valid}, or 'all'")
    return list(dict.fromkeys(names))


def parse_steps(text: str, available: list[int] | None = None) -> list[int]:
    """Parse `--steps` into a sorted list of checkpoint steps.

    Accepts `all`, `published`, `final`, `log`, a comma list (`1000,2000`), ranges
    `START:STOP:STRIDE` (STOP included when it is a checkpoint), and mixes of these.
    """
    available = ALL_STEPS if available is None else available
    named = {"all": available, "published": PUBLISHED_STEPS, "final": [max(available)], "log": LOG_STEPS}
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if part in named:
            chosen.update(named[part])
        elif ":" in part:
            chosen.update(_parse_range(part, available))
        else:
            chosen.add(_parse_int(part))
    missing = sorted(chosen - set(available))
    if not chosen:
        raise EvalsuiteError("--steps is empty; valid: all, published, final, log, 1000,2000 or START:STOP:STRIDE")
    if missing:
        raise EvalsuiteError(
            f"step {missing[0]} is not a checkpoint; valid steps: {_describe(available)}"
        )
    return sorted(chosen)


def _parse_int(part: str) -> int:
    try:
        value = int(part.removeprefix("step"))
    except ValueError:
        raise EvalsuiteError(
            f"bad step {part!r}; use all, published, final, log, a comma list like 1000,2000, "
            "or START:STOP:STRIDE"
        ) from None
    if value < 0:
        raise EvalsuiteError(f"bad step {part!r}: steps are not negative")
    return value


def _parse_range(part: str, available: list[int]) -> list[int]:
    pieces = part.split(":")
    if len(pieces) not in (2, 3):
        raise EvalsuiteError(f"bad step range {part!r}; use START:STOP or START:STOP:STRIDE")
    start, stop = _parse_int(pieces[0]), _parse_int(pieces[1])
    stride = _parse_int(pieces[2]) if len(pieces) == 3 and pieces[2] else None
    if stride == 0 or stop < start:
        raise EvalsuiteError(f"bad step range {part!r}: need START <= STOP and STRIDE > 0")
    if stride is None:  # every checkpoint in [START, STOP]
        return [s for s in available if start <= s <= stop]
    return list(range(start, stop + 1, stride))


def _describe(steps: list[int]) -> str:
    if steps == ALL_STEPS:
        return "0, 1, 2, 4 ... 512, then 1000 ... 143000 every 1000"
    return ", ".join(map(str, steps))
