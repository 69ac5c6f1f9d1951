"""benchmarks/bench_items.py times the dashboard on the store a full sweep leaves, so its builder
must write what a sweep writes: every column of the samples table, each sample pointing at the
document it was scored on. (Once samples carried a fingerprint, the builder failed for a day
and its page timings were taken on a store built before.)"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from evalsuite.catalog.pythia import ALL_STEPS
from evalsuite.records import Sample
from evalsuite.store.schema import column_types

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_items_benchmark_builds_what_a_sweep_writes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_items

    db = tmp_path / "bench.duckdb"
    built = bench_items.build(db, ["pythia-70m"], threads=2)
    assert built["rows"] == len(ALL_STEPS) * built["documents"]
    with duckdb.connect(str(db), read_only=True) as con:
        columns = [row[0] for row in con.execute("DESCRIBE samples").fetchall()]
        assert columns == list(column_types(Sample))
        for column in columns:  # a column the builder leaves out would be NULL throughout
            (filled,), = con.execute(f'SELECT count("{column}") FROM samples').fetchall()
            assert filled > 0, column
        (matched,), = con.execute("SELECT count(*) FROM samples s JOIN fingerprints f USING (fingerprint_id) "
                                  "JOIN documents d USING (task, shots, doc_id, fingerprint)").fetchall()
        assert matched == built["rows"]
        # each run's p_correct and bpb on each task, as the jobs' transactions store them
        (means,), = con.execute("SELECT count(*) FROM sample_means").fetchall()
        assert means == 2 * 5 * len(ALL_STEPS)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent (.ci/run installs it)")
def test_the_floor_page_is_served_and_drawn(monkeypatch):
    """The floor bench_items.py prints beside the dashboard's pages: streamlit_floor.py, served
    with the dashboard's runner settings, drawn in the same browser."""
    pytest.importorskip("playwright")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_items

    first, again = bench_items.floor(rounds=1)
    assert 0 < again and 0 < first < 60


def test_the_chart_cost_page_draws_each_variant_it_names(monkeypatch):
    """benchmarks/chart_cost.py names the variants of a view's chart; chart_page.py draws each."""
    import pandas as pd

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import chart_cost
    import chart_page

    layer = {"mark": {"type": "line"}, "data": {"name": "data-0"}}
    chart = {"spec": {"layer": [layer, {**layer, "mark": "point"}, {**layer, "data": {"name": "data-1"}}]},
             "datasets": {"data-0": pd.DataFrame({"n": range(120)}), "data-1": pd.DataFrame({"n": range(3)})}}
    named = dict(chart_cost.variants(chart))
    assert named["the whole chart (123 rows)"] == "full" and named["without layer 1 (point, data-0)"] == "without-1"
    drawn = {name: chart_page.variant(chart, name) for name in named.values()}
    spec, frames = drawn["full"]
    assert spec == chart["spec"] and frames == chart["datasets"]
    spec, frames = drawn["rows"]
    assert [len(f) for f in frames.values()] == [50, 3] and spec["layer"] == chart["spec"]["layer"]
    spec, frames = drawn["unused"]  # the whole datasets sent, the layers drawing their first rows
    assert len(frames["data-0"]) == 120 and len(frames["data-0-head"]) == 50
    assert [layer["data"]["name"] for layer in spec["layer"]] == ["data-0-head", "data-0-head", "data-1-head"]
    spec, _ = drawn["without-1"]
    assert [layer["mark"] for layer in spec["layer"]] == [{"type": "line"}, {"type": "line"}]
    assert len(chart["spec"]["layer"]) == 3  # the chart itself left as it was
    spec, frames = drawn["tiny"]
    assert spec["data"] == {"name": "tiny"} and len(frames["tiny"]) == 10
    single = {"spec": {"data": {"name": "data-0"}, "mark": "rect"},
              "datasets": {"data-0": pd.DataFrame({"n": range(9)})}}
    spec, frames = chart_page.variant(single, "unused")  # a chart of one view, no layers
    assert spec["data"] == {"name": "data-0-head"} and set(frames) == {"data-0", "data-0-head"}
    assert [name for _, name in chart_cost.variants(single)] == ["full", "rows", "unused", "tiny"]
