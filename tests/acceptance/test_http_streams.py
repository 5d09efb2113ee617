"""``GET /api/v1/executions/{id}/streams/{key}`` as server-sent events, through a real HTTP
client against a real ``zart serve --with-worker`` process (both backends): followed live,
resumed after a disconnect by ``Last-Event-ID`` or ``offset``, each item once and in order;
bad requests refused clearly."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import zart
from tests.acceptance.stream_flow import stream_flow, stream_gated
from tests.acceptance.test_cli_serve import _free_port, served
from tests.acceptance.test_cli_worker import ROOT
from tests.processes import Process, until_healthy

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_API_TOKEN"] = TOKEN
    arguments = ["tests.acceptance.stream_flow", "--with-worker", "--database-url", database_url]
    yield from served(arguments, env)


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The events of a ``text/event-stream`` answer as they come: ``{"id", "event",
    "data"}`` (comments and the ``retry`` field skipped)."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith((":", "retry:")):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def start(base: str) -> str:
    answer = httpx.post(
        f"{base}/api/v1/executions", json={"taskName": "stream-gated", "payload": {}}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text
    execution_id: str = answer.json()["durableExecutionId"]
    return execution_id


def test_a_browser_style_reader_resumes_after_a_disconnect(server: str) -> None:
    execution_id = start(server)
    url = f"{server}/api/v1/executions/{execution_id}/streams/numbers"
    seen: list[tuple[str, Any]] = []
    with httpx.stream("GET", url, headers=AUTH, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            seen.append((event["id"], json.loads(event["data"])))
            if len(seen) == 2:
                break  # disconnects mid-stream, as a browser losing its network would
    # The reconnect carries the last id seen, as EventSource sends it (offset is ignored).
    with httpx.stream(
        "GET", f"{url}?offset=0", headers={**AUTH, "Last-Event-ID": "1"}, timeout=30
    ) as response:
        for event in sse_events(response):
            if event.get("event") == "end":
                break
            seen.append((event["id"], json.loads(event["data"])))
            if len(seen) == 3:  # follows live: the next items come once the event arrives
                sent = httpx.post(f"{server}/api/v1/events/{execution_id}/more", headers=AUTH)
                assert sent.status_code == 202, sent.text
        else:
            raise AssertionError("the stream ended without its end event")
    assert seen == [(str(n), n) for n in range(6)]
    # Finished: any offset reads the stored log, then the end.
    with httpx.stream("GET", f"{url}?offset=4", headers=AUTH, timeout=30) as response:
        events = list(sse_events(response))
    assert events == [
        {"id": "4", "data": "4"},
        {"id": "5", "data": "5"},
        {"event": "end", "data": "null"},
    ]


def test_bad_stream_requests_are_refused_clearly(server: str) -> None:
    execution_id = start(server)
    url = f"{server}/api/v1/executions/{execution_id}/streams/numbers"
    unknown = httpx.get(f"{server}/api/v1/executions/nope/streams/numbers", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "execution_not_found"
    for query in ("offset=-1", "offset=x", "offset=1.5"):
        answer = httpx.get(f"{url}?{query}", headers=AUTH)
        assert answer.status_code == 422, query
        assert "offset" in answer.json()["error"]["message"]
    for last in ("x", "-1", "1e3"):
        answer = httpx.get(url, headers={**AUTH, "Last-Event-ID": last})
        assert answer.status_code == 422, last
        assert "Last-Event-ID" in answer.json()["error"]["message"]
    assert httpx.get(url).status_code == 401


def test_a_sync_app_reads_published_progress(server: str, database_url: str) -> None:
    """The synchronous facade (a Flask-style app) waits for a value the served worker
    publishes."""
    with zart.DurableScheduler(database_url).sync() as sync:
        execution_id = sync.start(stream_flow, {"count": 3})
        assert sync.get_published(execution_id, "progress", timeout=30) in (0, 1, 2)
        assert sync.wait(execution_id, timeout=30) == 3
        assert sync.get_published(execution_id, "progress") == 2
        with pytest.raises(zart.PublishedValueTimeout):
            sync.get_published(sync.start(stream_gated, {}), "never", timeout=0)


def test_a_stopping_server_ends_open_streams_so_their_clients_resume_elsewhere(
    database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    arguments = ["tests.acceptance.stream_flow", "--with-worker", "--database-url", database_url]
    process = Process(
        [sys.executable, "-m", "zart", "serve", *arguments, "--port", str(port)], cwd=ROOT, env=env
    )
    try:
        until_healthy(process, base)
        execution_id = start(base)  # writes 3 items, then waits for an event that never comes
        seen: list[dict[str, Any]] = []
        third = threading.Event()
        url = f"{base}/api/v1/executions/{execution_id}/streams/numbers"
        with httpx.stream("GET", url, timeout=60) as response:
            reading = threading.Thread(target=lambda: _collect(response, seen, third))
            reading.start()
            assert third.wait(30)
            process.popen.send_signal(signal.SIGTERM)
            reading.join(60)
    finally:
        returncode = process.stop(signal.SIGTERM)
    assert [event["id"] for event in seen] == ["0", "1", "2"]  # and no end event: it resumes
    assert returncode in (0, -signal.SIGTERM), process.stderr  # stopped, not killed after a hang
    assert "Exception in ASGI application" not in process.stderr


def _collect(response: httpx.Response, seen: list[dict[str, Any]], third: threading.Event) -> None:
    for event in sse_events(response):
        seen.append(event)
        if len(seen) == 3:
            third.set()


def test_a_signed_in_browser_reads_a_stream_on_its_session_cookie(server: str) -> None:
    """``EventSource`` cannot send ``Authorization``: the dashboard's session cookie lets a
    page of the same origin read streams (a GET), as docs/streams.md says."""
    execution_id = start(server)
    with httpx.Client(base_url=server) as browser:
        signed_in = browser.post("/dashboard/sign-in", data={"token": TOKEN})
        assert signed_in.status_code in (200, 303), signed_in.text
        assert browser.cookies
        sent = httpx.post(f"{server}/api/v1/events/{execution_id}/more", headers=AUTH)
        assert sent.status_code == 202
        url = f"/api/v1/executions/{execution_id}/streams/numbers"
        with browser.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            events = list(sse_events(response))
    assert [event.get("id") for event in events] == ["0", "1", "2", "3", "4", "5", None]
    assert events[-1]["event"] == "end"
