"""Text views of the store: `evalsuite ls` and the summary after a run, as text the CLI prints.

Every cell is passed through names.printable: a name stored before names were checked may hold
terminal escape sequences, which are shown escaped (\\x1b), never sent to the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite import names, store

if TYPE_CHECKING:
    from evalsuite.sweep.local import SweepReport


def listing(db: str | None, model: str | None = None, source: str | None = None) -> str:
    """One line per (source, model, step): which tasks are stored, and at which shots."""
    path = store.db_path(db)
    models = names.check_list("model", model)
    source = names.check("source", source) if source is not None else None
    where, params = store.scores_where(models, source=source)
    frame = store.read_df(path, f"""
        SELECT source, model, step, shots, string_agg(DISTINCT task, ',' ORDER BY task) AS tasks,
               count(*) AS scores
        FROM scores {where} GROUP BY ALL ORDER BY source, model, step NULLS LAST, shots""", params)
    if frame.empty:
        return f"no scores stored in {path}"
    table = text_table(frame.fillna({"step": -1}).astype({"step": int}).replace({"step": {-1: "-"}}))
    return f"{table}\n{len(frame)} (model, step, shots) groups, {int(frame.scores.sum())} scores in {path}"


def run_summary(db: Path, report: SweepReport, shots: int) -> str:
    """After a sweep: the headline scores of what was just run, and where the time went."""
    done = [d for d in report.jobs if d.tasks]
    dropped = [d for d in report.jobs if not d.tasks]
    recovered = (f"committed {report.recovered} checkpoint(s) an earlier, stopped sweep had left waiting"
                 if report.recovered else "")
    if not done:
        if dropped:
            return _dropped(dropped, db)
        return recovered if report.failed or report.unstored or recovered else \
            "nothing to do: every requested checkpoint is already stored (use --force to redo)"
    ids = [d.run_id for d in done]
    frame = store.read_df(db, f"""
        SELECT model, step, task, metric, value, stderr FROM scores
        WHERE run_id IN ({', '.join('?' for _ in ids)}) ORDER BY model, step, task, metric""", ids)
    frame["step"] = frame["step"].fillna(-1).astype(int)  # a released model's one checkpoint: no step
    frame = frame.pivot_table(index=["model", "step"], columns=["task", "metric"], values="value")
    frame.columns = [f"{t}:{m}" for t, m in frame.columns]
    frame = frame.reset_index().replace({"step": {-1: "-"}})
    n, up = len(done), report.startup
    wall = sum(d.times.wall_s for d in done) - up.first_load_s
    scoring = sum(d.times.scoring_s for d in done)
    lines = [text_table(frame, floatfmt="{:.4g}"),
             f"evaluated {n} checkpoint(s), {wall / n:.1f} s each on average ({scoring / n:.1f} s of "
             f"it scoring; {shots}-shot); stored in {db}"]
    if up.total_s:  # (a Ray sweep's start-up happens on each worker)
        lines.append(f"start-up {up.total_s:.1f} s: libraries {up.libraries_s:.1f}, store {up.store_s:.1f}, "
                     f"tokenizer {up.tokenizer_s:.1f}, lm-eval requests {up.requests_s:.1f} (while the "
                     f"first checkpoint loads), rest of the first load {up.first_load_s:.1f}")
    if dropped:
        lines.append(_dropped(dropped, db))
    if recovered:
        lines.append(recovered)
    return "\n".join(lines)


def _dropped(dropped: list, db: Path) -> str:
    """Checkpoints evaluated whose every task another writer had stored meanwhile (kept, not doubled)."""
    which = ", ".join(f"{d.model} step {d.step}" if d.step is not None else d.model for d in dropped)
    return (f"evaluated {len(dropped)} checkpoint(s) another writer stored meanwhile; their scores in {db} "
            f"were kept, these not written: {which}")


def text_table(frame, floatfmt: str = "{:.4f}") -> str:
    """A plain fixed-width table (no extra dependency)."""
    cells = [[names.printable(c) for c in frame.columns]]
    for row in frame.itertuples(index=False):
        cells.append([floatfmt.format(v) if isinstance(v, float) else names.printable(v) for v in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
