"""Which task and metric separate models more than they wobble: noise, signal and their ratio,
as Heineman et al. define them ("Signal and Noise: A Framework for Reducing Uncertainty in
Language Model Evaluation", 2025, arXiv:2508.13144; their code computes the same:
allenai/signal-and-noise, snr/metrics.py `signal_to_noise_ratio`):

- a model's **noise**: the relative standard deviation of its score over its last N evaluated
  checkpoints: std / mean, std over the N values themselves (ddof 0, as their code's np.std);
- a family's noise: the mean of its models' noise;
- a family's **signal** at a step: the relative dispersion of its models' scores there,
  (max - min) / mean (their max over pairs |m_j - m_k| / mean). The step: the last one at which
  every model of the family with this task, metric and shot count has a score (143000 for
  EleutherAI's published Pythia numbers), or one asked for;
- **snr** = signal / noise.

One row per (source, family, task, metric, shots). The scores are those standing for each
checkpoint: stored ones (acc, acc_norm, perplexity), and p_correct and bpb derived from the
samples (store/values.py) at the checkpoints these statistics read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalsuite.records import Model
from evalsuite.stats import models as model_facts
from evalsuite.stats.models import family_of
from evalsuite.store.metrics import DERIVED
from evalsuite.store.values import checkpoint_scores

LAST = 5  # checkpoints a model's noise is measured over
METRICS = ("acc", "acc_norm", "perplexity", "p_correct", "bpb")
KEYS = ["source", "family", "task", "metric", "shots"]
COLUMNS = [*KEYS, "models", "step", "signal", "last_n", "noise", "snr"]
NOISE_COLUMNS = [*KEYS, "model", "noise", "points", "first_step", "last_step"]


def noise_by_model(scores: pd.DataFrame, last: int = LAST) -> pd.DataFrame:
    """Each model's noise over its last `last` evaluated steps (NOISE_COLUMNS; points: how many
    there were, noise NaN under two). `scores`: KEYS, model, step, value, one row per checkpoint."""
    tail = scores.dropna(subset=["step"]).sort_values("step").groupby([*KEYS, "model"]).tail(last)
    grouped = tail.groupby([*KEYS, "model"])
    frame = grouped.agg(mean=("value", "mean"), std=("value", "std"), points=("value", "size"),
                        first_step=("step", "min"), last_step=("step", "max"))
    n = frame["points"]
    std = frame["std"] * np.sqrt((n - 1) / n)  # pandas' std has ddof 1; the paper's, 0
    frame["noise"] = np.where(n >= 2, std / frame["mean"], np.nan)
    return frame.reset_index()[NOISE_COLUMNS]


def signal_by_family(scores: pd.DataFrame, step: int | None = None) -> pd.DataFrame:
    """Each family's signal (KEYS, models, step, signal): at `step`, or at the last step every
    one of its models has a score at (step null: models with one checkpoint, OPT and BLOOM)."""
    scores = scores.assign(at=scores["step"].fillna(-1))  # (a model's only checkpoint: step -1 here)
    models = scores.groupby(KEYS)["model"].nunique().rename("everyone")
    per_step = scores.groupby([*KEYS, "at"])["model"].nunique().rename("models").reset_index()
    if step is None:
        per_step = per_step.merge(models, on=KEYS)
        per_step = per_step[per_step["models"] == per_step["everyone"]]
        chosen = per_step.loc[per_step.groupby(KEYS)["at"].idxmax(), [*KEYS, "at", "models"]]
    else:
        chosen = per_step[per_step["at"] == step]
    values = scores.merge(chosen[[*KEYS, "at"]], on=[*KEYS, "at"]).groupby(KEYS)["value"]
    spread = (values.max() - values.min()) / values.mean()
    frame = chosen.set_index(KEYS).join(spread.rename("signal")).reset_index()
    frame["signal"] = frame["signal"].where(frame["models"] >= 2)
    frame["step"] = frame["at"].where(frame["at"] >= 0).astype("Int64")
    return frame[[*KEYS, "models", "step", "signal"]]


def signal_noise(scores: pd.DataFrame, last: int = LAST, step: int | None = None) -> pd.DataFrame:
    """COLUMNS, one row per (source, family, task, metric, shots), from `scores` (KEYS, model,
    step, value): signal at the step, noise over each model's last `last` checkpoints, snr."""
    if scores.empty:
        return pd.DataFrame(columns=COLUMNS)
    noise = noise_by_model(scores, last).groupby(KEYS)["noise"].mean()
    frame = signal_by_family(scores, step).set_index(KEYS).join(noise).reset_index()
    frame["last_n"] = last
    frame["snr"] = frame["signal"] / frame["noise"]
    return frame[COLUMNS].sort_values(KEYS, ignore_index=True)


def family_scores(db: Path, metrics: tuple[str, ...] | list[str] = METRICS, family: str | None = None,
                  tasks: list[str] | None = None, source: str | None = None, shots: int | None = None,
                  last: int = LAST) -> pd.DataFrame:
    """KEYS, model, step, value: the scores signal_noise reads, of every model (or a family's).
    The derived metrics are computed from the samples only at the steps it reads: each model's
    last `last` stored checkpoints and each family's common last one."""
    facts = model_facts.known(db)
    stored = [_with_family(checkpoint_scores(db, m, tasks=tasks, source=source, shots=shots), family, facts)
              for m in metrics if m not in DERIVED]
    frames = [f for f in stored if len(f)]
    derived = [m for m in metrics if m in DERIVED]
    if derived:
        known = pd.concat(frames) if frames else None
        steps = _steps_read(known, last) if known is not None else None
        models = sorted(known["model"].unique()) if known is not None else None
        frames += [_with_family(checkpoint_scores(db, m, models, tasks, source, shots, steps), family, facts)
                   for m in derived]
    frames = [f for f in frames if len(f)]
    columns = [*KEYS, "model", "step", "value"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _with_family(frame: pd.DataFrame, family: str | None, facts: dict[str, Model]) -> pd.DataFrame:
    frame = frame.assign(family=frame["model"].map(lambda model: family_of(model, facts)))
    return frame[frame["family"] == family] if family else frame


def _steps_read(scores: pd.DataFrame, last: int) -> list[int]:
    """Each model's last `last` steps and each family's common last step, in these scores."""
    stepped = scores.dropna(subset=["step"]).drop_duplicates([*KEYS, "model", "step"])
    tails = stepped.sort_values("step").groupby([*KEYS, "model"]).tail(last)["step"]
    common = signal_by_family(scores)["step"].dropna()
    return sorted(set(tails.astype(int)) | set(common.astype(int)))
