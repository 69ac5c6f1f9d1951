"""`EvalCallback`: a transformers TrainerCallback that evaluates the model being trained at each
save (or every `every` steps) and stores its scores, so a training script adds one line:

    trainer = Trainer(..., callbacks=[EvalCallback(model_name="my-run", limit=200)])

Each evaluation is `evalsuite.evaluate_model` at the Trainer's global step (sweep/inloop.py): the
store, provenance and requests a sweep uses, and the training state put back afterwards.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback


class EvalCallback(TrainerCallback):
    def __init__(self, model_name: str, tasks: list[str] | None = None, limit: int | None = None,
                 db: str | Path | None = None, every: int | None = None, shots: int = 0, tokenizer=None):
        from evalsuite import names
        from evalsuite.errors import EvalsuiteError

        if every is not None and every < 1:
            raise EvalsuiteError(f"every={every}: a number of steps >= 1, or None (at each save)")
        self.model_name, self.tasks, self.limit, self.db = names.check("model", model_name), tasks, limit, db
        self.every, self.shots, self.tokenizer = every, shots, tokenizer
        self.evaluated: list = []  # what each evaluation stored (sweep/inloop.py Evaluated), in order
        self._last_step: int | None = None

    def on_save(self, args, state, control, **kwargs):
        if self.every is None:
            self._evaluate(state, kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every is not None and state.global_step % self.every == 0:
            self._evaluate(state, kwargs)

    def _evaluate(self, state, kwargs: dict) -> None:
        from evalsuite.errors import EvalsuiteError
        from evalsuite.sweep.inloop import evaluate_model

        if not state.is_world_process_zero or self._last_step == state.global_step:
            return  # one process evaluates, once a step
        tokenizer = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        if tokenizer is None:
            raise EvalsuiteError("EvalCallback: the Trainer has no tokenizer (processing_class); "
                                 "pass EvalCallback(..., tokenizer=...)")
        self._last_step = state.global_step
        self.evaluated.append(evaluate_model(
            kwargs["model"], tokenizer, model_name=self.model_name, step=state.global_step, tasks=self.tasks,
            shots=self.shots, limit=self.limit, db=self.db))
