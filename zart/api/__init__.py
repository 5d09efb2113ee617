"""Zart's HTTP API (FastAPI), wire-compatible with the original Zart server.

- :func:`create_router` — the routes over a ``DurableScheduler``, to include in your own app
  under any prefix;
- :func:`create_app` — a complete app (router, health checks, error envelope, body limit,
  optional worker): what ``zart serve`` runs;
- :func:`lifespan`, :func:`session_scheduler` and :class:`SessionScheduler` — Zart inside
  your own FastAPI app (``docs/fastapi.md``).

Needs the ``api`` extra: ``pip install 'zart-durable[api]'``.
"""

from zart.api.app import ApiSettings, create_app
from zart.api.fastapi import SessionScheduler, lifespan, session_scheduler
from zart.api.routes import create_router

__all__ = [
    "ApiSettings",
    "SessionScheduler",
    "create_app",
    "create_router",
    "lifespan",
    "session_scheduler",
]
