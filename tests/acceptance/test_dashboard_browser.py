"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven over the DevTools
protocol by Playwright with ``executable_path``: no browser download) against ``zart serve
--with-worker`` with a token, on both backends, with executions scheduled (held by a paused
queue), completed, failed, waiting for an event, sleeping and cancelled: every screen renders
without a console error or an uncaught exception (light, dark, and 420 px wide without sideways
scrolling), and the actions (start, send event, cancel, bulk cancel and retry, skip sleep,
retry step, restart, rerun, add/remove/pause a schedule, add a pause rule, resume/limit/pause
a queue) change what they should in the database, read back through the API.

With ``ZART_DASHBOARD_SCREENSHOTS=DIR`` (``make screenshots``), each screen is saved there as a
PNG (the pictures of ``docs/dashboard.md``)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright

from tests.acceptance.test_cli_serve import served

pytestmark = pytest.mark.xdist_group("browser")

TOKEN = "br0wser-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: What a probe of this machine found Chromium needs with no network and as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("ZART_DASHBOARD_SCREENSHOTS")


@pytest.fixture
def browser(server: str) -> Iterator[Any]:
    """Chromium, launched after the server (and its database) is up: Playwright's driver
    keeps an event loop running in this thread while it is open."""
    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: make setup installs it (apt-get install chromium)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_API_TOKEN"] = TOKEN
    arguments = ["tests.acceptance.dashboard_flow", "--with-worker", "--database-url", database_url]
    yield from served(arguments, env)


class Api:
    """The test's own view of the database, through the HTTP API with the bearer token."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, headers=AUTH, timeout=30)

    def start(self, task: str, payload: object, **extra: object) -> str:
        answer = self.client.post(
            "/api/v1/executions", json={"taskName": task, "payload": payload, **extra}
        )
        assert answer.status_code == 201, answer.text
        execution_id: str = answer.json()["durableExecutionId"]
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def until(self, execution_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll until ``check`` holds (a guard against a hang, not a speed check)."""
        deadline = time.monotonic() + 30
        while True:
            found = self.execution(execution_id)
            if check(found):
                return found
            assert time.monotonic() < deadline, f"never: {found}"
            time.sleep(0.1)

    def status(self, execution_id: str, status: str) -> dict[str, Any]:
        return self.until(execution_id, lambda e: e["status"] == status)

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def api(server: str) -> Iterator[Api]:
    opened = Api(server)
    try:
        yield opened
    finally:
        opened.client.close()


class Screen:
    """One browser tab on the dashboard: every console error and uncaught exception kept."""

    def __init__(self, browser: Any, base: str, backend: str, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.base = base
        self.backend = backend
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.page.on("dialog", lambda d: d.dismiss())

    def sign_in(self) -> None:
        self.page.goto(f"{self.base}/")
        assert self.page.locator("script").count() == 0  # the form only
        self.page.fill("#token", TOKEN)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("nav >> text=Executions")

    def show(self, route: str, ready: str) -> None:
        self.page.goto(f"{self.base}/#{route}")
        try:
            self.page.wait_for_selector(ready)
        except playwright.TimeoutError:
            shown = self.page.inner_text("body")
            raise AssertionError(f"{route}: no {ready}: {self.problems} {shown}") from None
        assert self.problems == [], self.problems

    def shot(self, name: str) -> None:
        if SHOTS and self.backend == "sqlite":
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.evaluate("document.getElementById('toasts').replaceChildren()")
            self.page.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"), full_page=True)

    def confirm(self) -> None:
        self.page.click("#confirm-yes")

    def close(self) -> None:
        assert self.problems == [], self.problems
        self.context.close()


def test_an_execution_shows_its_children_its_parent_and_a_held_replay(
    server: str, api: Api, browser: Any, backend: str, tmp_path: Path
) -> None:
    family = api.start("dash-family", {"customer": "ivy"})
    assert api.status(family, "completed")["result"] == {"customer": "ivy", "charged": 3}
    flag = tmp_path / "deployed"
    drift = api.start("dash-drift", {"flag": str(flag)})
    api.status(drift, "waiting")
    flag.touch()  # the "deploy"
    sent = api.client.post(f"/api/v1/events/{drift}/go", json={})
    assert sent.status_code in (200, 202), sent.text
    detail = f"/zart/admin/v1/executions/{drift}/detail"
    # Held: waiting (not failed, not run again) with the verdict, until an operator answers.
    api.until(
        drift, lambda e: e["status"] == "waiting" and api.get(detail)["divergence"] is not None
    )

    screen = Screen(browser, server, backend)
    screen.sign_in()
    # The parent lists its child; the child links back to its parent.
    screen.show(f"/executions/{family}", "table[aria-label=Children] tr[data-child]")
    child = screen.page.get_attribute("table[aria-label=Children] tr[data-child]", "data-child")
    assert child is not None
    assert api.execution(child)["parentExecutionId"] == family
    screen.page.click(f"tr[data-child='{child}'] a")
    screen.page.wait_for_selector(f"[data-parent='{family}']")
    # The held execution says why, and the operator fails it from here.
    screen.show(f"/executions/{drift}", "[data-divergence]")
    assert "dash-after" in screen.page.inner_text("[data-divergence]")
    screen.shot("held")
    screen.page.click("button[name=fail-diverged]")
    screen.confirm()
    failed = api.status(drift, "failed")
    assert failed["error"]["kind"] == "non_deterministic_replay", failed["error"]
    screen.close()


def test_every_screen_renders_and_every_action_changes_the_database(
    server: str, api: Api, browser: Any, backend: str
) -> None:
    done = api.start("dash-order", {"customer": "ada", "amount": 5}, tags={"tenant": "acme"})
    failed = api.start("dash-order", {"customer": "bob", "amount": -1})
    approve = api.start("dash-approval", {"who": "eve"})
    cancel = api.start("dash-approval", {"who": "mallory"})
    bulk = api.start("dash-approval", {"who": "trent"}, tags={"tenant": "acme"})
    nap = api.start("dash-nap", {})
    paused = api.client.post("/zart/admin/v1/queues/dash-emails/pause")
    assert paused.status_code == 200, paused.text
    email = api.start("dash-email", {"to": "ops@example.com"})  # held: scheduled
    api.status(done, "completed")
    api.status(failed, "failed")
    for waiting in (approve, cancel, bulk, nap):
        api.status(waiting, "waiting")
    schedule = api.client.post(
        "/zart/admin/v1/schedules",
        json={"name": "nightly", "taskName": "dash-nap", "cron": "0 3 * * *", "payload": {}},
    )
    assert schedule.status_code in (200, 201), schedule.text

    screen = Screen(browser, server, backend)
    screen.sign_in()

    # Overview: counts by status (waiting among them), the chart, live workers.
    screen.show("/", "[data-count=waiting] .count-n")
    assert screen.page.inner_text("[data-count=waiting] .count-n") == "4"
    assert screen.page.inner_text("[data-count=failed] .count-n") == "1"
    assert screen.page.inner_text("[data-count=scheduled] .count-n") == "1"
    assert api.execution(email)["status"] == "scheduled"
    screen.page.wait_for_selector("svg.chart rect.bar", state="attached")
    assert "7 started" in screen.page.inner_text("p.legend")
    screen.page.wait_for_selector("text=/busy/")
    screen.shot("overview")
    screen.page.emulate_media(color_scheme="dark")  # prefers-color-scheme: dark
    screen.show("/", "[data-count=waiting] .count-n")
    background = "getComputedStyle(document.body).backgroundColor"
    dark = screen.page.evaluate(background)
    screen.shot("overview-dark")
    screen.page.emulate_media(color_scheme="light")
    assert screen.page.evaluate(background) != dark

    # Executions: what each waiting one waits for; filters kept in the URL.
    screen.show("/executions", f"tr[data-id='{nap}'] .wait")
    assert "sleep" in screen.page.inner_text(f"tr[data-id='{nap}'] .wait")
    assert "event" in screen.page.inner_text(f"tr[data-id='{approve}'] .wait")
    screen.shot("executions")
    screen.page.select_option("select[name=status]", "waiting")
    screen.page.fill("input[name=tag]", "tenant:acme")
    screen.page.click("form.filters button[type=submit]")
    screen.page.wait_for_selector(f"tr[data-id='{done}']", state="detached")
    assert screen.page.locator("tbody tr").count() == 1  # only trent: waiting and acme
    assert "status=waiting" in screen.page.url
    assert "tag=tenant" in screen.page.url
    # Bulk: select it and cancel.
    screen.page.check(f"tr[data-id='{bulk}'] input[type=checkbox]")
    screen.page.click("text=Cancel selected")
    screen.confirm()
    api.status(bulk, "cancelled")
    screen.page.reload()
    screen.page.wait_for_selector("text=No execution matches these filters.")
    assert "status=waiting" in screen.page.url  # the filters survive a reload
    # Live: a new match appears by itself (polling), under the same filters.
    later = api.start("dash-approval", {"who": "walter"}, tags={"tenant": "acme"})
    screen.page.wait_for_selector(f"tr[data-id='{later}'] .wait")
    assert screen.page.locator("tbody tr").count() == 1
    # Bulk retry of the failed step (it fails again: a new attempt, the row updated).
    screen.show("/executions?status=failed", f"tr[data-id='{failed}']")
    first = api.execution(failed)
    screen.page.check(f"tr[data-id='{failed}'] input[type=checkbox]")
    screen.page.click("text=Retry failed step")
    screen.confirm()
    api.until(failed, lambda e: e["status"] == "failed" and e["updatedAt"] != first["updatedAt"])

    # Detail of a failed one: the error in full; retry its step (it fails again: a new
    # attempt in the database), then restart it with a payload that works.
    screen.show(f"/executions/{failed}", "[data-step='dash-charge']")
    assert "card declined for -1" in screen.page.inner_text("[data-step='dash-charge']")
    screen.shot("execution-failed")
    before = api.get(f"/zart/admin/v1/executions/{failed}/detail")
    screen.page.click("[data-step='dash-charge'] >> text=Retry step")
    screen.confirm()
    api.until(
        failed,
        lambda e: e["status"] == "failed" and e["updatedAt"] != before["execution"]["updatedAt"],
    )
    screen.page.fill("textarea[name=restart-payload]", '{"customer": "bob", "amount": 7}')
    screen.page.click("form[aria-label=Restart] button[type=submit]")
    screen.confirm()
    restarted = api.status(failed, "completed")
    assert restarted["result"] == {"customer": "bob", "charged": 7}
    assert restarted["runCount"] == 2

    # Send an event to a waiting one.
    screen.show(f"/executions/{approve}", "text=Waiting for")
    screen.shot("execution-waiting")
    screen.page.fill("input[name=event]", "approval")
    screen.page.fill("textarea[name=payload]", '{"answer": "yes"}')
    screen.page.click("text=Send event")
    assert api.status(approve, "completed")["result"] == "eve: yes"
    screen.page.wait_for_selector("[data-event=approval]")

    # Cancel one.
    screen.show(f"/executions/{cancel}", "button[name=cancel]")
    screen.page.click("button[name=cancel]")
    screen.confirm()
    api.status(cancel, "cancelled")

    # Skip a sleep.
    screen.show(f"/executions/{nap}", "[data-step='nap'] >> text=Skip sleep")
    screen.page.click("[data-step='nap'] >> text=Skip sleep")
    screen.confirm()
    assert api.status(nap, "completed")["result"] == "rested"

    # Start, from the form built from the handler's input schema.
    screen.show("/start?task=dash-order", "text=Start an execution")
    screen.shot("start")
    assert not screen.page.is_visible("textarea[name=json]")  # the generated form instead
    screen.page.fill("#f-payload_customer", "carol")
    screen.page.fill("#f-payload_amount", "11")
    screen.page.click("form[aria-label='Start an execution'] button[type=submit]")
    screen.page.wait_for_url("**/#/executions/*")
    started = screen.page.url.rsplit("/", 1)[1]
    finished = api.status(started, "completed")
    assert finished["payload"] == {"customer": "carol", "amount": 11, "express": False}

    # Rerun a completed one's step: a new run.
    screen.show(f"/executions/{done}", "[data-step='dash-charge']")
    screen.page.click("[data-step='dash-charge'] summary")  # a completed step starts folded
    screen.page.check("[data-step='dash-charge'] input[type=checkbox]")
    screen.page.click("button[name=rerun]")
    screen.confirm()
    # A worker may take the new run at once: any status but a finished one of the first run.
    rerun = api.until(done, lambda e: e["runCount"] == 2)
    assert rerun["status"] in {"scheduled", "running", "completed"}, rerun
    assert api.status(done, "completed")["runCount"] == 2

    # Schedules: add one, remove it; pause another.
    screen.show("/schedules", "tr[data-schedule=nightly]")
    adding = "form[aria-label='Add a schedule']"
    screen.page.fill(f"{adding} input[name=name]", "hourly")
    screen.page.fill(f"{adding} input[name=task]", "dash-nap")
    screen.page.fill(f"{adding} input[name=cron]", "0 * * * *")
    screen.page.fill(f"{adding} textarea[name=payload]", "{}")
    screen.page.click(f"{adding} button[type=submit]")
    screen.page.wait_for_selector("tr[data-schedule=hourly]")
    names = [s["name"] for s in api.get("/zart/admin/v1/schedules")]
    assert sorted(names) == ["hourly", "nightly"]
    screen.page.click("tr[data-schedule=hourly] >> text=Remove")
    screen.confirm()
    screen.page.wait_for_selector("tr[data-schedule=hourly]", state="detached")
    assert [s["name"] for s in api.get("/zart/admin/v1/schedules")] == ["nightly"]
    screen.shot("schedules")
    screen.page.click("tr[data-schedule=nightly] >> text=Pause")
    screen.page.wait_for_selector("tr[data-schedule=nightly] >> text=Resume")
    (nightly,) = api.get("/zart/admin/v1/schedules")
    assert nightly["paused"] is True

    # Pause rules: add one.
    screen.show("/pause", "form[aria-label='Add a pause rule']")
    form = "form[aria-label='Add a pause rule']"
    screen.page.fill(f"{form} input[name=task]", "dash-order")
    screen.page.fill(f"{form} input[name=reason]", "psp incident")
    screen.page.click(f"{form} button[type=submit]")
    screen.page.wait_for_selector("text=psp incident")
    rules = api.get("/zart/admin/v1/pause")
    assert [(r["taskName"], r["reason"]) for r in rules] == [("dash-order", "psp incident")]
    screen.shot("pause-rules")

    # Queues: the declared one, paused with one execution held; resumed from here, it runs.
    row = "tr[data-queue=dash-emails]"
    screen.show("/queues", f"{row} >> text=Resume")
    assert screen.page.inner_text(f"{row} [data-field=queued]") == "1"
    screen.shot("queues")
    screen.page.click(f"{row} >> text=Resume")
    assert api.status(email, "completed")["result"] == "sent to ops@example.com"
    assert api.get("/zart/admin/v1/queues/dash-emails")["paused"] is False
    screen.page.wait_for_selector(f"{row} >> text=Pause")
    screen.page.click(f"{row} >> text=Edit limits")
    screen.page.fill(f"{row} input[name=concurrency]", "5")
    screen.page.fill(f"{row} input[name=partitionRateLimit]", "10/1m")
    screen.page.click(f"{row} >> text=Save limits")
    api_queue = api.get("/zart/admin/v1/queues/dash-emails")
    deadline = time.monotonic() + 30
    while api_queue["concurrency"] != 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        api_queue = api.get("/zart/admin/v1/queues/dash-emails")
    assert (api_queue["concurrency"], api_queue["partitionRateLimit"]) == (5, "10/1m")
    screen.page.click(f"{row} >> text=Pause")
    screen.confirm()
    screen.page.wait_for_selector(f"{row} >> text=Resume")
    assert api.get("/zart/admin/v1/queues/dash-emails")["paused"] is True

    # Keyboard: the first Tab reaches the skip link, the next the brand and the screens.
    screen.page.reload()
    screen.page.wait_for_selector("h1")
    screen.page.keyboard.press("Tab")
    assert screen.page.evaluate("document.activeElement.textContent") == "Skip to content"
    screen.page.keyboard.press("Tab")
    assert screen.page.evaluate("document.activeElement.className") == "brand"

    screen.show("/workers", "text=alive")
    screen.close()

    # A narrow window: the same screens, still without errors.
    narrow = Screen(browser, server, backend, width=420)
    narrow.sign_in()
    narrow_screens = [
        ("/", "svg.chart"),
        ("/executions", "table.list"),
        ("/queues", "td"),
        (f"/executions/{failed}", "[data-step]"),
    ]
    for route, ready in narrow_screens:
        narrow.show(route, ready)
        width = narrow.page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"{route} scrolls sideways: {width}"
    narrow.shot("narrow")
    narrow.close()
