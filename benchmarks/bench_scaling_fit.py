"""Benchmark: how far a scaling fit on small Pythias lands from the large ones.

For each family (pythia: the standard models; pythia-deduped: those trained on the deduplicated
Pile), task and metric of EleutherAI's published zero-shot numbers (results/published.csv,
seeded into a fresh store): fit on the final checkpoint (step 143000) of the six models up to
2.8B (70m, 160m, 410m, 1b, 1.4b, 2.8b), predict 6.9B and 12B, and print each prediction, its 95%
bootstrap band and its absolute error, for the metric's own form (stats/fit.py: `logistic`
between the step-0 score and 1 for accuracies, `power-loss` for perplexity) and for the simplest
baseline, a straight line in log parameters (`linear`); then the mean absolute error per form
and metric kind (accuracies and perplexity are in different units, so never averaged together),
and how many of the bands hold the actual score.

    python benchmarks/bench_scaling_fit.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import machine
import pandas as pd

from evalsuite import store
from evalsuite.stats import fit
from evalsuite.store.values import checkpoint_scores

STEP = 143000
TRAIN = ["70m", "160m", "410m", "1b", "1.4b", "2.8b"]
TEST = ["6.9b", "12b"]
METRICS = ("acc", "acc_norm", "perplexity")


def published() -> pd.DataFrame:
    """task, metric, model, step, value: every published zero-shot score."""
    with tempfile.TemporaryDirectory() as folder:
        db = store.init(Path(folder) / "published.duckdb")
        return pd.concat([checkpoint_scores(db, m, source="published", shots=0) for m in METRICS], ignore_index=True)


def with_bands(scores: pd.DataFrame, errors: pd.DataFrame, train: list[str], test: list[str]) -> pd.DataFrame:
    """The backtest rows with each prediction's 95% band (residual bootstrap, seeded)."""
    bands = []
    for (task, metric, form), group in errors.groupby(["task", "metric", "form"], sort=False):
        rows = scores[(scores["task"] == task) & (scores["metric"] == metric)]
        final = rows[rows["step"] == STEP].set_index("model")["value"]
        floor = fit.floor_of(rows) if form == "logistic" else 0.0
        band = fit.band(fit.log_size(train), final[train].to_numpy(), form, fit.log_size(test), floor)
        bands.append(group.assign(low=band["low"].to_numpy(), high=band["high"].to_numpy()))
    return pd.concat(bands)


def main() -> None:
    print(machine.describe())
    scores = published()
    summary = []
    for family, suffix in (("pythia", ""), ("pythia-deduped", "-deduped")):
        train, test = [f"pythia-{s}{suffix}" for s in TRAIN], [f"pythia-{s}{suffix}" for s in TEST]
        errors = with_bands(scores, fit.backtest(scores, train, test, STEP), train, test)
        print(f"\n{family}: fitted on {', '.join(TRAIN)} at step {STEP}; predicting {', '.join(TEST)}")
        print(f"{'task':15s} {'metric':10s} {'model':20s} {'actual':>8s}  {'form':10s} {'predicted':>9s} "
              f"{'95% band':>19s} {'abs error':>9s}")
        for r in errors.itertuples():
            print(f"{r.task:15s} {r.metric:10s} {r.model:20s} {r.actual:8.4f}  {r.form:10s} {r.predicted:9.4f} "
                  f"[{r.low:8.4f}, {r.high:8.4f}] {r.abs_error:9.4f}")
        kind = errors["metric"].map(lambda m: "perplexity" if m == "perplexity" else "accuracies")
        inside = (errors["low"] <= errors["actual"]) & (errors["actual"] <= errors["high"])
        summary.append(errors.assign(family=family, kind=kind, in_band=inside))
    table = pd.concat(summary).groupby(["kind", "family", "form"]).agg(
        mean=("abs_error", "mean"), max=("abs_error", "max"), predictions=("abs_error", "size"),
        in_band=("in_band", "sum"))
    print("\nmean absolute error (over tasks, metrics and both predicted models); in_band: predictions whose "
          "95% band holds the actual score")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
