"""`--steps`: which of a model's checkpoints to evaluate, on any checkpoint list.

`all`, `final`, a comma list (`1000,2000`, `step3000`), ranges `START:STOP` (every checkpoint in
between) or `START:STOP:STRIDE`, and mixes of these, against the steps the model has (a fixed
list, or the ones found in its repository or folder). `published` and `log` name parts of
Pythia's schedule, so they only apply to a model that keeps it.
"""

from __future__ import annotations

from evalsuite.catalog import pythia
from evalsuite.errors import EvalsuiteError

GRID_WORDS = {"published": pythia.PUBLISHED_STEPS, "log": pythia.LOG_STEPS}
STEP_MAX = 2**31 - 1  # the store's step column is a DuckDB INTEGER
USAGE = "all, final, a comma list like 1000,2000, or START:STOP:STRIDE"


def parse_steps(text: str, available: list[int] | None = None, grid: str | None = pythia.GRID,
                model: str = "this model") -> list[int]:
    """`--steps` as a sorted list of steps of `available` (default: Pythia's 154). `grid` says
    whether Pythia's words apply (`published`, `log`); `model` names the model in messages."""
    available = pythia.ALL_STEPS if available is None else sorted(available)
    if not available:
        raise EvalsuiteError(f"{model} has no checkpoints with a training step")
    named = {"all": available, "final": [available[-1]]}
    chosen: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if part in named:
            chosen.update(named[part])
        elif part in GRID_WORDS:
            if grid != pythia.GRID:
                raise EvalsuiteError(f"--steps {part} names Pythia's checkpoint schedule, which {model} "
                                     f"does not keep; use {USAGE}")
            chosen.update(GRID_WORDS[part])
        elif ":" in part:
            chosen.update(_parse_range(part, available))
        else:
            chosen.add(_parse_int(part))
    missing = sorted(chosen - set(available))
    if not chosen:
        raise EvalsuiteError(f"--steps is empty; valid: {USAGE}")
    if missing:
        raise EvalsuiteError(f"step {missing[0]} is not a checkpoint; valid steps: {describe(available)}")
    return sorted(chosen)


def _parse_int(part: str) -> int:
    try:
        value = int(part.removeprefix("step"))
    except ValueError:
        raise EvalsuiteError(f"bad step {part!r}; use {USAGE} (and published or log for Pythia's schedule)") from None
    if value < 0:
        raise EvalsuiteError(f"bad step {part!r}: steps are not negative")
    if value > STEP_MAX:
        raise EvalsuiteError(f"bad step {part!r}: at most {STEP_MAX:,} (what the store keeps)")
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
    wanted = range(start, stop + 1, stride)
    if len(wanted) > len(available):  # more steps than checkpoints: name the first missing one,
        have = set(available)        # never build a list of billions
        missing = next(s for s in wanted if s not in have)
        raise EvalsuiteError(f"step {missing} is not a checkpoint; valid steps: {describe(available)}")
    return list(wanted)


def describe(steps: list[int]) -> str:
    """A checkpoint list for a message: Pythia's in words, a short one in full, a long one cut."""
    steps = sorted(steps)
    if steps == pythia.ALL_STEPS:
        return "0, 1, 2, 4 ... 512, then 1000 ... 143000 every 1000"
    if len(steps) <= 12:
        return ", ".join(map(str, steps))
    return f"{', '.join(map(str, steps[:5]))} ... {', '.join(map(str, steps[-3:]))} ({len(steps)} checkpoints)"
