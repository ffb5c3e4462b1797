"""The dashboard at `/` of `tt serve` (issue 12, point 4) in a real browser (Playwright driving
Debian's chromium; skipped only where neither Playwright nor a chromium can be found): the DAG
draws every task coloured by its state, a state change appears without a reload (the page follows
the SSE stream), the task panel shows attempts and the log tail, Retry works, a token given as
`#token=…` is used, and the page reads on a phone-sized screen. The screenshot in the README is
taken here (`TT_DASHBOARD_SHOT=PATH`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_agents import Town, town  # noqa: F401
from tests.integration.test_serve import Served

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.integration]

CHROMIUM = os.environ.get("TT_TEST_CHROMIUM") or next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
TOWN = '[town]\nname = "dash"\n\n[agents.dev]\nmodel = "sim"\n\n[agents.qa]\nmodel = "sim"\n'
TASKS = """# the dashboard's town
[[tasks]]
id = "design"
description = "Design the feature"
agent = "dev"

[[tasks]]
id = "feature"
description = "The feature"

[[tasks]]
id = "build"
description = "Build it"
agent = "dev"
parent = "feature"
depends_on = ["design"]

[[tasks]]
id = "flaky"
description = "[sim:fail] a step that fails"
agent = "qa"
parent = "feature"
retries = 0

[[tasks]]
id = "ship"
description = "Ship it"
agent = "dev"
depends_on = ["feature"]

[[tasks]]
id = "gated"
description = "[sim:sleep:600] waits for the test to let it go"
agent = "qa"
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium to drive (apt-get install chromium, or set TT_TEST_CHROMIUM)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def node_state(page: Any, task: str) -> str:
    return str(page.get_attribute(f'#dag g.node[data-id="{task}"]', "data-state"))


def test_the_dashboard_draws_follows_and_retries(town: Town, browser: Any) -> None:  # noqa: F811
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    town.tt("apply", env={"TT_SIM_DELAY": "0.05"})
    town.wait_states({"design": "completed", "flaky": "failed", "ship": "upstream_failed"})
    served = Served(town, env={"TT_API_TOKEN": "s3cret"})
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        refused: list[str] = []  # what the page's Content-Security-Policy blocked
        page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else 0)
        page.goto(f"{served.base}/#token=s3cret")
        page.wait_for_selector('#dag g.node[data-id="ship"]')
        assert "token" not in page.url  # read once, then out of the address bar
        ids = page.eval_on_selector_all("#dag g.node", "els => els.map(e => e.dataset.id)")
        assert sorted(ids) == sorted(["design", "feature", "build", "flaky", "ship", "gated"])
        assert node_state(page, "design") == "completed"
        assert node_state(page, "flaky") == "failed"
        assert node_state(page, "ship") == "upstream_failed"
        fill = page.eval_on_selector(
            '#dag g.node[data-id="flaky"] rect', "r => getComputedStyle(r).fill"
        )
        assert fill == "rgb(245, 183, 177)"  # the failed colour
        page.wait_for_selector("#link.live")
        page.wait_for_selector('#agents tr[data-agent="dev"]')
        assert page.locator("#events li").count() > 0

        # A change made elsewhere (the CLI) shows without a reload: the page follows the stream,
        # and a task event changes its node in place (the graph is not read again: blocked).
        graph_reads: list[str] = []

        def no_graph(route: Any) -> None:
            graph_reads.append(route.request.url)
            route.abort()

        page.route("**/v1/graph*", no_graph)
        town.tt("cancel", "gated")
        page.wait_for_selector('#dag g.node[data-id="gated"][data-state="cancelled"]')
        assert "1 cancelled" in page.inner_text("#summary")
        page.unroute("**/v1/graph*")

        # The task panel: attempts and the log tail; Retry runs the failed task again.
        page.click('#dag g.node[data-id="flaky"]')
        page.wait_for_selector("#attempts tbody tr")
        assert page.inner_text("#task-title") == "flaky"
        assert "failed" in page.inner_text("#attempts tbody")
        assert page.inner_text("#log-tail").strip()
        shot = os.environ.get("TT_DASHBOARD_SHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)
        page.click("#task-retry")
        page.wait_for_selector("#task-said:has-text('retried')")
        page.wait_for_function(
            "() => document.querySelectorAll('#attempts tbody tr').length >= 2", timeout=30_000
        )
        assert len(town.status()["tasks"]) == 6
        legend = page.eval_on_selector(
            "#legend span", "s => getComputedStyle(s).getPropertyValue('--c').trim()"
        )
        assert legend == "#b7e4c7" and refused == [], refused  # the completed colour

        # Retry as `tt retry` takes it: a task waiting on a failed one is retried through that
        # one (409 otherwise), so its button is off.
        page.click('#dag g.node[data-id="ship"]')
        page.wait_for_function("() => document.querySelector('#task-title').textContent == 'ship'")
        assert page.is_disabled("#task-retry") and page.is_enabled("#task-cancel")

        # A phone: one column, nothing wider than the screen but the graph's own scroller.
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(f"{served.base}/#token=s3cret")
        phone.wait_for_selector('#dag g.node[data-id="ship"]')
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, width
    finally:
        served.stop()


@pytest.mark.parametrize("url", ["/", "/#token=%E0%A4%A"], ids=["no-token", "bad-escape"])
def test_without_the_token_the_page_loads_and_says_so(
    town: Town,  # noqa: F811
    browser: Any,
    url: str,
) -> None:
    """Without a token, or with a malformed one (a bad %-escape in #token= used to throw and
    stop the page, review of issue 12, finding 14: it is taken as given), the page loads and
    says the token is missing or wrong."""
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS.split("[[tasks]]")[0])
    town.tt("apply")
    served = Served(town, env={"TT_API_TOKEN": "s3cret"})
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(served.base + url)
        page.wait_for_selector("#summary.error")
        assert "missing or wrong API token" in page.inner_text("#summary")
        assert errors == [] and "token" not in page.url
    finally:
        served.stop()


def test_the_static_files_ship_in_the_package() -> None:
    static = Path(__file__).parents[2] / "reconciler" / "api" / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "app.css"}
    html = (static / "index.html").read_text()
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched from elsewhere
