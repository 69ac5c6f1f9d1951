"""Where a dashboard page's time goes in the browser: Chromium's JavaScript CPU profile of one
opening, summed by script file and by function (self time), and the page's time until its charts
are drawn. The page is opened twice in one browser profile (Streamlit's scripts cached, the
server's caches filled, as bench_items.py's second round) and the second opening is profiled.

    python benchmarks/profile_page.py --db results/bench_items.duckdb "?view=items&model=pythia-160m"

Needs Chromium and playwright (pip install 'evalsuite[test]'); reads the store, writes nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402 - benchmarks/machine.py, beside this script
from bench_items import _DONE, chromium, new_profile, serve  # noqa: E402


def profile(port: int, query: str, charts: int, repeat: int) -> tuple[list[float], dict]:
    """Seconds until `charts` charts are drawn at the second opening of `query` (profiled) and at
    `repeat` more openings (not profiled), and the second opening's CPU profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium(p)
        context = new_profile(browser)
        seconds, result = [], {}
        for opening in range(2 + repeat):
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            if opening == 1:
                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 200})  # microseconds
                cdp.send("Profiler.start")
            start = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/{query}")
            page.wait_for_function(_DONE, arg=[charts, 0], timeout=300_000)  # bench_items.py's wait
            if opening:
                seconds.append(time.perf_counter() - start)
            if opening == 1:
                result = cdp.send("Profiler.stop")["profile"]
            page.close()
        browser.close()
    return seconds, result


def self_times(result: dict) -> tuple[collections.Counter, collections.Counter]:
    """Milliseconds of self time per script file and per function, from the profile's samples."""
    nodes = {node["id"]: node["callFrame"] for node in result["nodes"]}
    by_file: collections.Counter = collections.Counter()
    by_function: collections.Counter = collections.Counter()
    deltas = result["timeDeltas"][1:] + [0]  # each sample lasts until the next one
    for node_id, delta in zip(result["samples"], deltas):
        frame = nodes[node_id]
        script = frame["url"].rsplit("/", 1)[-1] or frame["functionName"]
        by_file[script] += delta / 1000
        by_function[f"{frame['functionName'] or '(anonymous)'} in {script}"] += delta / 1000
    return by_file, by_function


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("query", help="the page's link after the host, e.g. '?view=training'")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--charts", type=int, default=1, help="charts drawn when the page is done")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=0, help="time this many more openings (median printed)")
    args = parser.parse_args()
    print(machine.describe())
    with serve(args.db) as server:
        seconds, result = profile(server.port, args.query, args.charts, args.repeat)
    by_file, by_function = self_times(result)
    print(f"{args.query}: {seconds[0]:.2f} s until {args.charts} chart(s) drawn at the second opening (profiled)"
          + (f"; median of {len(seconds) - 1} more: {statistics.median(seconds[1:]):.2f} s "
             f"({', '.join(f'{s:.2f}' for s in seconds[1:])})" if len(seconds) > 1 else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    print("self time by script (ms):")
    for name, ms in by_file.most_common(args.top):
        print(f"  {ms:7.0f}  {name}")
    print("self time by function (ms):")
    for name, ms in by_function.most_common(args.top):
        print(f"  {ms:7.0f}  {name}")


if __name__ == "__main__":
    main()
