"""Zart for this application, defined once for both of its processes:

    uvicorn examples.fastapi_app.app:create_app --factory           # the web process
    zart worker --app examples.fastapi_app.durable:scheduler        # the worker process

Both run on the application's engine (``APP_DATABASE_URL``, its pool, its ``connect_args``),
with the same Zart settings and the handlers ``workflows`` registers.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

import zart

from . import workflows  # noqa: F401  (importing it registers the durable handlers)
from .database import create_app_engine


def scheduler_for(engine: AsyncEngine) -> zart.DurableScheduler:
    """Zart on the application's engine. Zart's other settings come from ``ZART_*`` (or give
    ``settings=zart.Settings(...)`` here)."""
    return zart.DurableScheduler(engine=engine)


#: What ``zart worker --app`` runs. Creating it opens no connection.
scheduler = scheduler_for(create_app_engine())
