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
