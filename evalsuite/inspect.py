"""Text views of the store: `evalsuite ls` and the summary table printed after a run.

Every cell is passed through names.printable: a name stored before names were checked may hold
terminal escape sequences, which are shown escaped (\\x1b), never sent to the terminal.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite import names, store


def print_listing(db: str | None, model: str | None = None, source: str | None = None) -> None:
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
        print(f"no scores stored in {path}")
        return
    print(_table(frame.fillna({"step": -1}).astype({"step": int}).replace({"step": {-1: "-"}})))
    print(f"{len(frame)} (model, step, shots) groups, {int(frame.scores.sum())} scores in {path}")


def print_run_summary(db: Path, done: list[dict], shots: int) -> None:
    """After a sweep: seconds per checkpoint and the headline scores of what was just run."""
    if not done:
        print("nothing to do: every requested checkpoint is already stored (use --force to redo)")
        return
    ids = [d["run_id"] for d in done]
    frame = store.read_df(db, f"""
        SELECT model, step, task, metric, value, stderr FROM scores
        WHERE run_id IN ({', '.join('?' for _ in ids)}) ORDER BY model, step, task, metric""", ids)
    frame = frame.pivot_table(index=["model", "step"], columns=["task", "metric"], values="value")
    frame.columns = [f"{t}:{m}" for t, m in frame.columns]
    print(_table(frame.reset_index(), floatfmt="{:.4g}"))
    seconds = [d["seconds"] for d in done]
    print(f"evaluated {len(done)} checkpoint(s), {sum(seconds) / len(seconds):.1f} s each on average "
          f"({shots}-shot); stored in {db}")


def _table(frame, floatfmt: str = "{:.4f}") -> str:
    """A plain fixed-width table (no extra dependency)."""
    cells = [[names.printable(c) for c in frame.columns]]
    for row in frame.itertuples(index=False):
        cells.append([floatfmt.format(v) if isinstance(v, float) else names.printable(v) for v in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
