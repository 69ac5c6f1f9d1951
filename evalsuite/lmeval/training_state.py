"""A training loop's state, kept across an evaluation in the middle of it.

`preserved(model)` records what evaluating a model in memory could change and puts it back when
the block ends, whatever happens inside: each module's train/eval mode, whether autograd is on,
where the parameters are, and every random number generator a training step may draw from
(Python's, numpy's, torch's CPU one and each CUDA device's: lm-eval seeds Python's and numpy's
when it builds requests). So a run that evaluates every few steps trains exactly as one that
does not.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainingState:
    modes: dict[str, bool]  # each module's `training`, by its name in the model
    grad_enabled: bool
    device: Any  # the first parameter's device (torch.device), None for a model without any
    python_rng: Any
    numpy_rng: Any
    torch_rng: Any
    cuda_rng: list | None  # one state per CUDA device, where CUDA is initialised


def capture(model) -> TrainingState:
    import numpy as np
    import torch

    first = next(iter(model.parameters()), None)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return TrainingState(
        modes={name: module.training for name, module in model.named_modules()},
        grad_enabled=torch.is_grad_enabled(), device=first.device if first is not None else None,
        python_rng=random.getstate(), numpy_rng=np.random.get_state(), torch_rng=torch.get_rng_state(),
        cuda_rng=cuda)


def restore(model, state: TrainingState) -> None:
    import numpy as np
    import torch

    first = next(iter(model.parameters()), None)
    if first is not None and state.device is not None and first.device != state.device:
        model.to(state.device)
    for name, module in model.named_modules():
        if name in state.modes:
            module.training = state.modes[name]
    torch.set_grad_enabled(state.grad_enabled)
    random.setstate(state.python_rng)
    np.random.set_state(state.numpy_rng)
    torch.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None:
        torch.cuda.set_rng_state_all(state.cuda_rng)


@contextlib.contextmanager
def preserved(model) -> Iterator[TrainingState]:
    """The block may evaluate `model`; afterwards its training state is as before."""
    state = capture(model)
    try:
        yield state
    finally:
        restore(model, state)
