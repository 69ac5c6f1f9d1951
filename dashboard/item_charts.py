"""The Items view's Altair charts: documents x checkpoints (as runs of equal outcome), learning
times, flips, one document's choices over training and its outcome by model size. Each builder
takes rows already read (store/items.py through dashboard/data.py); none reads the store.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts import _STEPS_LABEL, AnyChart, _size_order

RIGHT_WRONG = alt.Scale(domain=["right", "wrong"], range=["#3b75af", "#f2b880"])


def _outcome(correct: pd.Series) -> pd.Series:
    return correct.map({True: "right", False: "wrong"})


def _step_axis(steps: list[int], title: str = "checkpoint (training step)") -> alt.X:
    """Evaluated steps side by side (ordinal: each checkpoint one column), about 12 labelled."""
    every = max(1, len(steps) // 12)
    shown = [str(s) for s in steps[::every]]
    return alt.X("step_label:O", title=title, sort=[str(s) for s in steps],
                 axis=alt.Axis(values=shown, labelAngle=-45, labelExpr=_STEPS_LABEL.replace("datum.value",
                                                                                          "toNumber(datum.value)")))


def heat_runs(cells: pd.DataFrame, steps: list[int]) -> pd.DataFrame:
    """The heat map's cells (doc_id, step, correct) as runs: one row per stretch of consecutive
    evaluated checkpoints where a document stays right (or wrong): doc_id, outcome, first and end
    (column positions, end exclusive), from_step, to_step, checkpoints. A document that flips k
    times is k + 1 rows, not one per checkpoint: at full scale 200 documents x 154 checkpoints
    were 30,800 rectangles for the browser to draw, and are now a few hundred."""
    column = {s: i for i, s in enumerate(steps)}
    data = cells.assign(col=cells["step"].astype(int).map(column)).sort_values(["doc_id", "col"])
    new = ((data["doc_id"] != data["doc_id"].shift()) | (data["correct"] != data["correct"].shift())
           | (data["col"] != data["col"].shift() + 1))
    runs = data.groupby(new.cumsum().to_numpy()).agg(
        doc_id=("doc_id", "first"), correct=("correct", "first"), first=("col", "min"), last=("col", "max"),
        from_step=("step", "min"), to_step=("step", "max"), checkpoints=("col", "size"))
    return runs.assign(end=runs["last"] + 1, outcome=_outcome(runs["correct"])).drop(columns="last")


def _step_label(step: int) -> str:
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def item_heatmap(cells: pd.DataFrame, order: list[int], steps: list[int]) -> alt.Chart:
    """Documents (rows, in `order`) x checkpoints (columns, each evaluated step one column):
    right or wrong at each, drawn as runs of equal outcome (heat_runs)."""
    data = heat_runs(cells, steps)
    labels = len(order) <= 60
    every = max(1, len(steps) // 12)
    names = "[" + ",".join(f"'{_step_label(s)}'" for s in steps) + "]"
    xenc = alt.X("first:Q", title="checkpoint (training step)", scale=alt.Scale(domain=[0, len(steps)], nice=False),
                 axis=alt.Axis(values=[i + 0.5 for i in range(0, len(steps), every)], labelAngle=-45,
                               labelExpr=f"{names}[floor(datum.value)]", grid=False))
    return alt.Chart(data).mark_rect().encode(
        xenc, alt.X2("end:Q"),
        alt.Y("doc_id:O", title=f"{len(order)} documents, by learned_at", sort=order,
              axis=alt.Axis(labels=labels, ticks=labels)),
        alt.Color("outcome:N", title=None, scale=RIGHT_WRONG),
        tooltip=["doc_id", "outcome", alt.Tooltip("from_step:Q", title="from step"),
                 alt.Tooltip("to_step:Q", title="to step"), "checkpoints"],
    ).properties(height=max(240, min(720, 3 * len(order))))


def learned_histogram(learned_at: pd.Series, steps: list[int]) -> alt.Chart:
    """How many documents were learned (for good) at each checkpoint; those never learned are
    counted in the title (a bar for them would dwarf the others)."""
    learned = learned_at.dropna().astype(int)
    counts = learned.value_counts().rename_axis("step").reset_index(name="documents")
    counts["step_label"] = counts["step"].astype(str)
    never = int(learned_at.isna().sum())
    return alt.Chart(counts).mark_bar(color="#3b75af").encode(
        _step_axis(steps, "learned at: the first checkpoint right at every later one"),
        alt.Y("documents:Q", title="documents"), tooltip=[alt.Tooltip("step:Q", title="learned at"), "documents"],
    ).properties(height=240, title=f"When documents were learned ({never:,} not learned)")


def flips_histogram(flips: pd.Series) -> alt.Chart:
    """How many documents changed between right and wrong how many times (0 included)."""
    top = int(flips.max()) if len(flips) else 0
    per_count = flips.value_counts().reindex(range(top + 1), fill_value=0)
    counts = per_count.rename_axis("flips").reset_index(name="documents")
    every = max(1, (top + 1) // 15)
    return alt.Chart(counts).mark_bar(color="#3b75af").encode(
        alt.X("flips:O", title="flips: changes between right and wrong",
              axis=alt.Axis(values=list(range(0, top + 1, every)), labelAngle=0)),
        alt.Y("documents:Q", title="documents"), tooltip=["flips", "documents"],
    ).properties(height=240, title="How often documents flipped")


def choice_curves(history: pd.DataFrame, labels: list[str], target: int | None, steps: list[int]) -> AnyChart:
    """Each choice's loglikelihood at each checkpoint (the heat map's columns); the right one thick."""
    rows = [{"step_label": str(int(step)), "step": int(step), "choice": labels[i], "loglikelihood": ll,
             "right": i == target}
            for step, lls in zip(history["step"], history["loglikelihoods"]) for i, ll in enumerate(lls)
            if i < len(labels)]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        _step_axis(steps), alt.Y("loglikelihood:Q", title="loglikelihood", scale=alt.Scale(zero=False)),
        alt.Color("choice:N", title="choice", sort=labels))
    lines = base.mark_line().encode(alt.StrokeWidth("right:N", legend=None,
                                                    scale=alt.Scale(domain=[True, False], range=[3, 1.2])))
    points = base.mark_point(filled=True, size=18).encode(
        tooltip=["step", "choice", "right", alt.Tooltip("loglikelihood:Q", format=".3f")])
    return alt.layer(lines, points).properties(height=260, title="Each choice's loglikelihood")


def outcome_strip(history: pd.DataFrame, steps: list[int]) -> AnyChart:
    """The document's margin at each checkpoint (right choice minus the best wrong one), coloured
    by whether the model was right; a strip of right/wrong where there is no margin (LAMBADA)."""
    data = history.assign(step_label=history["step"].astype(int).astype(str), outcome=_outcome(history["correct"]))
    color = alt.Color("outcome:N", title=None, scale=RIGHT_WRONG)
    if data["margin"].notna().any():
        bars = alt.Chart(data).mark_bar().encode(
            _step_axis(steps), alt.Y("margin:Q", title="margin"), color,
            tooltip=["step", "outcome", alt.Tooltip("margin:Q", format=".3f")])
        rule = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(color="black").encode(y="y:Q")
        return alt.layer(bars, rule).properties(height=180, title="Margin: right choice minus the best wrong one")
    return alt.Chart(data).mark_rect().encode(
        _step_axis(steps), alt.Y("outcome:N", title=None, sort=["right", "wrong"]), color,
        tooltip=["step", "outcome"]).properties(height=alt.Step(26), title="Right or wrong at each checkpoint")


def by_scale(rows: pd.DataFrame) -> alt.Chart:
    """Right or wrong at each model's last checkpoint: model size (columns) x training data (rows)."""
    data = rows.assign(outcome=_outcome(rows["correct"]))
    return alt.Chart(data).mark_rect(stroke="white", strokeWidth=2).encode(
        alt.X("size:N", title="model size", sort=_size_order(data), axis=alt.Axis(labelAngle=0)),
        alt.Y("variant:N", title=None, sort=["standard", "deduped"]),
        alt.Color("outcome:N", title=None, scale=RIGHT_WRONG, legend=alt.Legend(orient="top")),
        tooltip=["model", "step", "outcome", alt.Tooltip("margin:Q", format=".3f")],
    ).properties(height=alt.Step(26), width=alt.Step(42))
