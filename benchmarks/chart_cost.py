"""Where a view's chart spends its time in the browser: its first chart, as the dashboard sends it
(its Vega-Lite spec and datasets, taken from the real app on the store), drawn alone on a page
(chart_page.py: the floor page's heading and table, and the chart), and variants of it: its
datasets cut to their first 50 rows; sent whole but drawn from 50 rows (what sending the rows
costs); each layer left out in turn; a ten-point line chart; and the floor page itself. All are
served at once and opened in turn in one browser profile, `--rounds` times after a first round
that loads the scripts; prints each one's median and its difference from the whole chart's.

    python benchmarks/chart_cost.py --db results/bench_items.duckdb --view "?view=training"

Needs Chromium and playwright (pip install 'evalsuite[test]'); reads the store, writes nothing
outside a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402 - benchmarks/machine.py, beside this script
from bench_items import FLOOR_APP, _draw_time, chromium, new_profile, serve_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGE = Path(__file__).resolve().parent / "chart_page.py"


def first_chart(db: Path, view: str) -> dict:
    """{"spec", "datasets"} of the first chart the app draws for `view` (a link's query), as sent."""
    import pyarrow as pa
    from streamlit.testing.v1 import AppTest

    os.environ["EVALSUITE_DB"] = str(db)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    for pair in view.lstrip("?").split("&"):
        key, _, value = pair.partition("=")
        at.query_params[key] = value
    chart = at.run().get("vega_lite_chart")[0].proto
    frames = {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.datasets}
    return {"spec": json.loads(chart.spec), "datasets": frames}


def variants(chart: dict) -> list[tuple[str, str]]:
    """(label, ?v= name) of every variant chart_page.py draws of `chart`."""
    rows = sum(len(frame) for frame in chart["datasets"].values())
    out = [(f"the whole chart ({rows:,} rows)", "full"), ("its datasets cut to 50 rows", "rows"),
           ("its datasets sent whole, drawn from 50 rows", "unused")]
    for i, layer in enumerate(chart["spec"].get("layer", [])):
        mark = layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        out.append((f"without layer {i} ({mark}, {layer.get('data', {}).get('name', 'its data')})", f"without-{i}"))
    return out + [("a ten-point line chart instead", "tiny")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a store, e.g. bench_items.py --keep's")
    parser.add_argument("--view", default="?view=training", help="the view's link after the host")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine.describe())
    chart = first_chart(args.db, args.view)
    chosen = variants(chart)
    times: dict[str, list[float]] = {label: [] for label in [*dict(chosen), "the floor page (no chart)"]}
    with tempfile.TemporaryDirectory(prefix="chart_cost_") as tmp, contextlib.ExitStack() as stack:
        saved = Path(tmp) / "chart.pickle"
        saved.write_bytes(pickle.dumps(chart))
        page = stack.enter_context(serve_app(PAGE, env=dict(os.environ, CHART_COST_FILE=str(saved))))
        floor = stack.enter_context(serve_app(FLOOR_APP))
        opens = [(label, page.port, f"?v={name}", 1) for label, name in chosen]
        opens.append(("the floor page (no chart)", floor.port, "", 0))
        browser = chromium(stack.enter_context(sync_playwright()))
        profile = new_profile(browser)
        for done in range(args.rounds + 1):  # the first round loads the scripts; not counted
            for label, port, query, charts in (opens if done % 2 else opens[::-1]):
                seconds = _draw_time(profile, port, query, charts, 1)
                if done:
                    times[label].append(seconds)
        browser.close()
    whole = statistics.median(times[chosen[0][0]])
    print(f"{args.view}: median of {args.rounds} openings each, seconds until the chart and the table are drawn; "
          f"load average now {os.getloadavg()[0]:.1f}")
    for label, openings in times.items():
        median = statistics.median(openings)
        print(f"  {label:55s} {median:5.2f} s  {median - whole:+5.2f} s")


if __name__ == "__main__":
    main()
