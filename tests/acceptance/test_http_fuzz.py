"""A property-based fuzz of the HTTP API from its own OpenAPI document (schemathesis): no
request, valid or not, gets a 5xx, an undocumented status code, or a body that breaks the
documented schema. A real server (uvicorn in a thread) on a real database, both backends, and
once more with a token set (every request carries it); a bounded number of examples and a fixed
seed keep it short and repeatable."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import zart
from zart.api import ApiSettings, create_app


@zart.durable("fuzz-task")
async def fuzz_task(data: dict[str, int]) -> int:
    return sum(data.values())


def _document() -> dict[str, object]:
    app = create_app(ApiSettings(database_url="sqlite+aiosqlite:///never-opened.db"))
    return app.openapi()


schema = schemathesis.openapi.from_dict(_document())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


TOKEN = "fuzz-token"


@dataclass(frozen=True)
class Served:
    url: str
    headers: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=["postgresql", "sqlite", "postgresql-auth"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A served app on a fresh migrated database of the backend (with a token: ``-auth``)."""
    cleanup = None
    token = TOKEN if request.param.endswith("-auth") else ""
    if request.param == "sqlite":
        target = tmp_path_factory.mktemp("fuzz") / "zart.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        url = f"sqlite+aiosqlite:///{target}"
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"{server.prefix}fz{uuid.uuid4().hex[:10]}"
        server.create_database(name, template=server.prefix + "zart_template")
        url = server.url(name)

        def cleanup() -> None:
            server.drop_database(name)

    port = _free_port()
    app = create_app(ApiSettings(database_url=url, max_body_bytes=64 * 1024, api_token=token))
    uvicorn_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=uvicorn_server.run, name="fuzz-server", daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if uvicorn_server.started:
                break
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        yield Served(f"http://127.0.0.1:{port}", headers)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        if cleanup is not None:
            cleanup()


@pytest.fixture(scope="module")
def seeded(served: Served) -> Served:
    """Some real data, so that routes answer with bodies and not only with 404s."""
    with httpx.Client(base_url=served.url, headers=served.headers) as client:
        client.post(
            "/api/v1/executions",
            json={"executionId": "fuzz-1", "taskName": "fuzz-task", "payload": {"a": 1}},
        )
        client.post("/zart/admin/v1/pause", json={"taskName": "fuzz-task"})
    return served


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_openapi_contract(case: schemathesis.Case, seeded: Served) -> None:
    case.call_and_validate(base_url=seeded.url, headers=seeded.headers, checks=CHECKS, timeout=30)


def test_the_openapi_document_is_served(seeded: Served) -> None:
    document = httpx.get(f"{seeded.url}/openapi.json", headers=seeded.headers).json()
    assert set(document["paths"]) == set(_document()["paths"])
    assert ("HTTPBearer" in document["components"].get("securitySchemes", {})) == bool(
        seeded.headers
    )
