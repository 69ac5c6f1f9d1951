"""Dashboard pages of this working tree against a git revision's (default `main`), in one run:
both dashboards serve the same store at once; each page is opened in one browser profile,
alternately from one and the other, `--rounds` times, and the time until its charts and tables
are drawn is timed as bench_items.py times it. Prints each page's median for both and their ratio.

    python benchmarks/bench_pages.py --db results/bench_items.duckdb --rounds 5

The revision's files are checked out with `git worktree` into a temporary folder, removed at the
end. Needs Chromium and playwright (pip install 'evalsuite[test]'); reads the store, writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402 - benchmarks/machine.py, beside this script
from bench_items import SUITE, _draw_time, chromium, new_profile, pages, serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(rev: str):
    with tempfile.TemporaryDirectory(prefix="bench_pages_") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a store, e.g. bench_items.py --keep's")
    parser.add_argument("--rev", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="only the pages whose label contains this")
    parser.add_argument("--first", action="store_true",
                        help="time first openings instead: each page opened once by a dashboard just started, "
                        "in a new browser profile, `--rounds` times per side")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine.describe())
    chosen = [page for page in pages(list(SUITE)) if args.only in page[0]]
    times: dict[str, dict[str, list[float]]] = {label: {"tree": [], "rev": []} for label, *_ in chosen}
    if args.first:
        with checkout(args.rev) as old:
            _first_openings(chosen, times, {"tree": ROOT, "rev": old}, args.db, args.rounds)
        _report(times, args.rev, args.rounds, "first openings: a dashboard just started, a new browser profile")
        return
    with checkout(args.rev) as old, serve(args.db, ROOT) as mine, serve(args.db, old) as theirs:
        with sync_playwright() as p:
            browser = chromium(p)
            profile = new_profile(browser)
            for port in (mine.port, theirs.port):  # first openings: fill caches, load scripts
                for _, query, n, t in chosen:
                    _draw_time(profile, port, query, n, t)
            for _ in range(args.rounds):
                for label, query, n, t in chosen:
                    for side, port in (("tree", mine.port), ("rev", theirs.port)):
                        times[label][side].append(_draw_time(profile, port, query, n, t))
            browser.close()
    _report(times, args.rev, args.rounds, "caches filled")


def _first_openings(chosen: list, times: dict, trees: dict[str, Path], db: Path, rounds: int) -> None:
    """Each page's first opening: for each round and side, a dashboard just started, a new profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium(p)
        for _ in range(rounds):
            for label, query, n, t in chosen:
                for side, tree in trees.items():
                    with serve(db, tree) as server:
                        profile = new_profile(browser)
                        times[label][side].append(_draw_time(profile, server.port, query, n, t))
                        profile.close()
        browser.close()


def _report(times: dict, rev: str, rounds: int, what: str) -> None:
    print(f"median of {rounds} openings each ({what}), seconds until charts and tables are drawn; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"{'page':50s} {'this tree':>9s} {rev:>9s}  ratio")
    for label, sides in times.items():
        tree, rev = statistics.median(sides["tree"]), statistics.median(sides["rev"])
        print(f"{label:50s} {tree:9.2f} {rev:9.2f}  {tree / rev:5.2f}")


if __name__ == "__main__":
    main()
