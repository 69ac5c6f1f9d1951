"""End to end: `evalsuite dashboard` serving a real store, opened in a real headless browser.

Debian's chromium (installed by .ci/run) driven by Playwright. The test waits for the charts'
drawn elements, not for page load: Streamlit's first paint is an empty shell. Screenshots go to
results/screenshots/ for a person to look at.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from evalsuite import store
from evalsuite.paths import RESULTS_DIR
from evalsuite.records import Sweep

import factory
from conftest import wait_healthy

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = RESULTS_DIR / "screenshots"
CHART = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
ITEM_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + list(range(1000, 143_000, 8000)) + [143_000]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _published(path: Path, step: int):
    return store.read_df(path, "SELECT task, metric, value, stderr FROM scores WHERE model = 'pythia-70m' "
                               "AND step = ? AND shots = 0 AND source = 'published'", [step])


def _write(path: Path, model: str, step: int, rows, scale: float, shift_se: float, sweep=None) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    shifted = [(t, m, v * scale + shift_se * se, se) for t, m, v, se in rows.itertuples(index=False)]
    record = factory.job(model, step, shifted, run_id=f"browser-{model}-{step}", n=50, doc_limit=50, dtype=None,
                         backend="evalsuite-fast", started_at=now, finished_at=now, duration_s=1.0)
    store.write_job(path, record, sweep_id=sweep)


def _store(path: Path) -> Path:
    """A new (seeded) store plus local runs written by the sweep's writer: a pythia-demo curve and a
    pythia-70m final checkpoint half a stderr above the published one; the demo's sweep is still
    running (4 of 6 checkpoints); two sizes learning PIQA's documents over 30 checkpoints, and a
    third learning most of them at once (one significant change)."""
    store.init(path)
    now = store.utcnow()
    store.start_sweep(path, Sweep("browser-sweep", "pythia-demo", 6, started_at=now, updated_at=now, hostname="here"))
    for i, step in enumerate([0, 25, 50, 100]):
        _write(path, "pythia-demo", step, _published(path, 0), 1 + 0.02 * i, 0.0, sweep="browser-sweep")
    _write(path, "pythia-70m", 143_000, _published(path, 143_000), 1.0, 0.5)
    for model, seed in (("pythia-160m", 0), ("pythia-410m", 1)):  # per-document samples for Items
        for record in factory.learning(model, ITEM_STEPS, "piqa", docs=120, seed=seed):
            store.write_job(path, record)
    store.write_documents(path, factory.documents("piqa", 200))
    for step in (0, 1000, 2000, 3000):  # pythia-1b learns 140 more of PIQA's documents at step 2000
        correct = [d < (40 if step < 2000 else 180) for d in range(200)]
        store.write_job(path, factory.job("pythia-1b", step, [("piqa", "acc", sum(correct) / 200, 0.03)], n=200,
                                          samples=factory.outcomes("pythia-1b", step, "piqa", correct)))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    db = _store(tmp_path_factory.mktemp("browser") / "store.duckdb")
    cmd = [sys.executable, "-m", "evalsuite", "dashboard", "--db", str(db), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        first = proc.stdout.readline()
        assert url in first, first  # the command prints where the dashboard is
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the session holds evalsuite and its streamlit child
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _open(browser, url: str, charts: int, name: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    page.goto(url)
    page.wait_for_selector(CHART, timeout=120_000)  # generous: CI machines can be busy
    page.wait_for_function(f"document.querySelectorAll(\"{CHART}\").length >= {charts}", timeout=120_000)
    page.wait_for_timeout(1000)  # vega draws its marks just after the element appears
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    return page


def _colours(png: bytes) -> int:
    from PIL import Image

    return len(Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_training_curves_render_in_a_browser(server, browser):
    page = _open(browser, server + "/?metric=acc", 1, "training")  # the demo-shaped acc is flat: asked for
    chart = page.locator("[data-testid='stVegaLiteChart']").first
    # an empty plot is a few greys; sixteen coloured curves with bands are hundreds of colours
    assert _colours(chart.screenshot()) > 100
    assert page.get_by_text("lambada_openai acc, 0-shot").count() >= 1
    assert page.locator("[data-testid='stException']").count() == 0


def test_model_card_scaling_plots_render_and_the_link_holds_the_view(server, browser):
    page = _open(browser, server + "/?view=scaling", 5, "scaling_model_card")
    charts = page.locator("[data-testid='stVegaLiteChart']")
    assert charts.count() == 5
    assert all(_colours(charts.nth(i).screenshot()) > 30 for i in range(5))
    page.close()
    page = _open(browser, server + "/?view=training&task=piqa&metric=acc_norm&x=tokens", 1, "training_piqa")
    assert page.get_by_text("piqa acc_norm, 0-shot").count() >= 1
    assert "task=piqa" in page.url and "x=tokens" in page.url


def test_runs_and_comparison_views_render(server, browser):
    page = _open(browser, server + "/?view=runs", 1, "runs")
    assert page.get_by_text("Sweep progress").count() >= 1
    assert page.get_by_text("pythia-demo on here: 4 of 6 checkpoints stored").count() == 1
    page.close()
    page = _open(browser, server + "/?view=compare", 1, "compare")
    page.locator("[data-testid='stDataFrame']").nth(1).wait_for(timeout=60_000)  # then the paired comparison
    assert page.locator("[data-testid='stDataFrame']").count() == 2
    assert page.locator("[data-testid='stException']").count() == 0


def _downloads(page) -> dict[str, bytes]:
    files = {}
    for label in ("Download CSV", "Download JSON"):
        with page.expect_download(timeout=60_000) as info:
            page.get_by_role("button", name=label).first.click()
        files[label] = Path(info.value.path()).read_bytes()
    return files


def test_the_download_buttons_give_the_views_rows(server, browser):
    """Both files hold the rows the view shows; on Runs, also after its progress fragment has
    rerun (every 5 s)."""
    page = _open(browser, server + "/?view=compare", 1, "compare_download")
    page.locator("[data-testid='stDataFrame']").nth(1).wait_for(timeout=60_000)  # the page's last part
    files = _downloads(page)
    frame = pd.read_csv(io.BytesIO(files["Download CSV"]))
    records = json.loads(files["Download JSON"])
    shown = page.get_by_text("scores stored by both").first.inner_text()
    assert len(frame) == len(records) == int(shown.split()[0]) > 0, shown
    assert {"model", "step", "task", "metric", "flag"} <= set(frame.columns)
    assert records[0]["model"] == frame["model"][0]
    page.close()
    page = _open(browser, server + "/?view=runs", 1, "runs_download")
    page.wait_for_timeout(12000)  # the sweep-progress fragment (every 5 s) reruns twice meanwhile
    runs = pd.read_csv(io.BytesIO(_downloads(page)["Download CSV"]))
    assert "run_id" in runs.columns and "pythia-demo" in set(runs["model"])  # the store's sweep
    page.close()


def test_the_sidebar_switches_views_and_the_link_follows(server, browser):
    """Streamlit's router serves the view the sidebar picks; the link names it (?view=) as before."""
    page = _open(browser, server + "/", 1, "switch_from_training")
    page.get_by_text("Runs", exact=True).click()
    page.get_by_text("Sweep progress").first.wait_for(timeout=120_000)
    page.wait_for_function("window.location.search.includes('view=runs')", timeout=60_000)
    page.get_by_text("Training curves", exact=True).click()  # and back, the link following
    page.wait_for_function("!window.location.search.includes('view=')", timeout=60_000)
    page.wait_for_selector(CHART, timeout=120_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_a_views_own_path_opens_it_and_back_returns(server, browser):
    """The router's paths work as addresses too: /runs typed or bookmarked opens Runs (not the
    sidebar's default), and the browser's Back button returns to the view before."""
    page = _open(browser, server + "/runs", 1, "runs_by_path")
    page.get_by_text("Sweep progress").first.wait_for(timeout=120_000)
    page.get_by_text("Scaling curves", exact=True).click()
    page.wait_for_function("window.location.pathname.endsWith('/scaling')", timeout=60_000)
    page.go_back()
    page.wait_for_function("window.location.pathname.endsWith('/runs')", timeout=60_000)
    page.wait_for_timeout(3000)  # a wrong view would be switched to within this
    assert page.url.split("?")[0].endswith("/runs"), page.url
    page.get_by_text("Sweep progress").first.wait_for(timeout=120_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_a_crafted_link_shows_its_values_as_text_in_a_real_browser(server, browser):
    """Issue 11, item 9, in the real renderer: link values the store does not hold are echoed in a
    warning as text, with no link and no image anywhere on the page."""
    from urllib.parse import urlencode

    crafted = {"task": "[sign in](https://evil.example/login)", "models": "![x](https://evil.example/x.png)",
               "metric": "https://evil.example/a"}
    page = _open(browser, server + "/?" + urlencode(crafted), 1, "crafted_link")
    warnings = " ".join(page.locator("[data-testid='stAlertContentWarning']").all_inner_texts())
    for value in crafted.values():
        assert value in warnings
    assert page.locator("a[href*='evil.example']").count() == 0
    assert page.locator("img[src*='evil.example']").count() == 0


def test_items_view_renders_and_picking_a_row_shows_that_document(server, browser):
    """Issue 10 in the real renderer: the heat map, the two distributions, the document table; a
    click on a table row picks that document (the link follows) and shows its prompt."""
    page = _open(browser, server + "/?view=items&model=pythia-160m", 3, "items")
    charts = page.locator("[data-testid='stVegaLiteChart']")
    assert _colours(charts.first.screenshot()) > 20  # right and wrong cells, not an empty frame
    assert page.get_by_text("Learned for good").count() == 1
    table = page.locator("[data-testid='stDataFrame']").first
    table.scroll_into_view_if_needed()  # Streamlit's page scrolls inside its own container
    box = table.bounding_box()
    row_height = 35  # Streamlit's data grid: a header row, then rows of 35 px
    page.mouse.click(box["x"] + 18, box["y"] + row_height * 3.5)  # the third row's selection box
    page.wait_for_function("window.location.search.includes('doc=')", timeout=60_000)
    doc = int(page.url.split("doc=")[1].split("&")[0])
    page.locator("[data-testid='stText']", has_text=f"Question {doc} of piqa?").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "items_picked.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0


def _pixels(png: bytes, rgb: tuple[int, int, int]) -> int:
    from PIL import Image

    return sum(count for count, colour in Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 20) or []
               if colour == rgb)


def test_statistics_render_in_a_browser(server, browser):
    """Issue 18 in the real renderer: a training curve's significant change drawn as a green
    triangle (and gone when no curve is picked), the Signal and noise table, the scaling fit's
    backtest saying where the fit is poor."""
    marked = _open(browser, server + "/?view=training&task=piqa&sig=pythia-1b|local", 1, "training_markers")
    assert marked.get_by_text("1 of 3 changes between consecutive evaluated checkpoints are significant").count() == 1
    green = (0x1A, 0x98, 0x50)  # stat_charts.SIGNIFICANT's "up"
    assert _pixels(marked.locator("[data-testid='stVegaLiteChart']").first.screenshot(), green) > 20
    plain = _open(browser, server + "/?view=training&task=piqa&sig=none", 1, "training_no_markers")
    assert _pixels(plain.locator("[data-testid='stVegaLiteChart']").first.screenshot(), green) == 0
    page = browser.new_page(viewport={"width": 1500, "height": 1200})  # a table, no chart
    page.goto(server + "/?view=signal")
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120_000)
    page.get_by_text("Most reliable signal").wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "signal.png"), full_page=True)
    page = _open(browser, server + "/?view=scaling&task=arc_easy", 1, "scaling_fit")
    page.get_by_text("Backtest").first.wait_for(timeout=60_000)
    assert page.get_by_text("Poor fit").count() >= 1
    assert page.locator("[data-testid='stException']").count() == 0
