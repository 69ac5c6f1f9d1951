"""evalsuite: evaluate Pythia checkpoints with lm-eval, store every score in DuckDB, plot them.

`evalsuite.evaluate_model` (sweep/inloop.py) and `evalsuite.EvalCallback` (lmeval/callback.py)
evaluate a model while it trains; they are imported on first use, so `import evalsuite` (and
`evalsuite --help`) loads neither torch nor transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["EvalCallback", "evaluate_model"]

if TYPE_CHECKING:
    from evalsuite.lmeval.callback import EvalCallback
    from evalsuite.sweep.inloop import evaluate_model


def __getattr__(name: str):
    if name == "evaluate_model":
        from evalsuite.sweep.inloop import evaluate_model

        return evaluate_model
    if name == "EvalCallback":
        from evalsuite.lmeval.callback import EvalCallback

        return EvalCallback
    raise AttributeError(f"module 'evalsuite' has no attribute {name!r}")
