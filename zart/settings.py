"""``zart.Settings``: the one source of Zart's settings, for the application's
``DurableScheduler``, the worker and the ``zart`` command line alike.

Every field reads the environment variable ``ZART_<FIELD>`` (``ZART_DATABASE_URL``,
``ZART_CONCURRENCY``, ...; the schema is ``ZART_SCHEMA``) and can be given in code instead::

    settings = zart.Settings()                                  # from the environment
    settings = zart.Settings(database_url="postgresql+asyncpg://app@db/app", concurrency=16)
    scheduler = zart.DurableScheduler(settings=settings)

What is given in code wins over the environment, which wins over the defaults. A value that
does not fit raises :class:`~zart.ConfigurationError` naming the variable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from zart.database import DEFAULT_DATABASE_URL
from zart.durations import parse_duration
from zart.errors import ConfigurationError
from zart.runtime.execution import DEFAULT_INLINE_WAIT_LIMIT, DEFAULT_MAX_PAYLOAD_BYTES
from zart.worker import WorkerSettings

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "ZART_"

_WORKER_DEFAULTS = WorkerSettings()


class Settings(BaseSettings):
    """Zart's settings (frozen). Each field's environment variable is ``ZART_`` and its name
    in capitals; :func:`load_settings` turns a bad value into a
    :class:`~zart.ConfigurationError`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", populate_by_name=True
    )

    #: SQLAlchemy URL of Zart's database (ignored by a scheduler given ``engine=``).
    database_url: str = DEFAULT_DATABASE_URL
    #: PostgreSQL schema of Zart's tables (``ZART_SCHEMA``; ``schema=`` in code works too).
    database_schema: str | None = Field(
        default=None, validation_alias=AliasChoices("database_schema", "schema", "ZART_SCHEMA")
    )
    #: Largest stored payload, step result or captured value, in bytes of JSON.
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1)
    #: Waits (sleeps, retry back-offs, short event waits) at most this long keep their worker
    #: slot and lease in memory; longer ones suspend the execution.
    inline_wait_limit: timedelta = DEFAULT_INLINE_WAIT_LIMIT
    #: Bearer token of the HTTP API (``zart serve``); ``None``: no auth.
    api_token: str | None = Field(default=None, repr=False)
    #: Origins a browser may call the HTTP API from (CORS), e.g. the original's admin UI:
    #: ``ZART_CORS_ORIGINS="http://localhost:5173,https://ops.example.com"``; none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    #: Level of the records ``zart worker`` and ``zart serve`` print (``ZART_LOG_LEVEL``).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: ``text`` (one line per record) or ``json`` (one object per line; ``ZART_LOG_FORMAT``).
    log_format: Literal["text", "json"] = "text"
    #: The application's scheduler, ``MODULE:ATTRIBUTE`` (``zart worker --app``).
    app: str | None = None
    # -- the worker (``run_worker`` and ``zart worker``): see :class:`zart.worker.WorkerSettings`
    concurrency: int = _WORKER_DEFAULTS.concurrency
    lease_timeout: float = _WORKER_DEFAULTS.lease_timeout
    heartbeat_interval: float | None = _WORKER_DEFAULTS.heartbeat_interval
    poll_interval: float = _WORKER_DEFAULTS.poll_interval
    shutdown_timeout: float = _WORKER_DEFAULTS.shutdown_timeout
    claim_ahead: float = _WORKER_DEFAULTS.claim_ahead
    claim_ahead_limit: int = _WORKER_DEFAULTS.claim_ahead_limit
    max_claims: int = _WORKER_DEFAULTS.max_claims
    #: Finished executions of handlers without a ``retention`` are deleted this long after
    #: they finished (``ZART_RETENTION="30d"``); none by default: kept for ever.
    retention: timedelta | None = None
    prune_interval: float = _WORKER_DEFAULTS.prune_interval
    #: How long schedules' firings are kept (``ZART_SCHEDULE_HISTORY="90d"``; ``"none"``: for
    #: ever), also after their schedule was removed.
    schedule_history: timedelta | None = _WORKER_DEFAULTS.history_kept_for
    #: The queues ``zart worker`` claims from (``ZART_QUEUES="emails,reports"``); all by default.
    queues: Annotated[tuple[str, ...] | None, NoDecode] = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("inline_wait_limit", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value, name="inline_wait_limit")

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> timedelta | None:
        return None if value in (None, "") else parse_duration(value, name="retention")

    @field_validator("schedule_history", mode="before")
    @classmethod
    def _history(cls, value: Any) -> timedelta | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return parse_duration(value, name="schedule_history")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return tuple(str(origin).strip().rstrip("/") for origin in value if str(origin).strip())
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        return value or None

    @field_validator("database_schema", "api_token", "app", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _worker_fits(self) -> Settings:
        self.worker_settings()  # WorkerSettings checks the worker's options, once for all
        return self

    def worker_settings(self, **given: Any) -> WorkerSettings:
        """The worker's options: these settings, with ``given`` (non-``None``) on top."""
        values = {name: getattr(self, name) for name in _WORKER_FIELDS}
        values.update({name: value for name, value in given.items() if value is not None})
        return WorkerSettings(**values)


_WORKER_FIELDS = tuple(WorkerSettings.__dataclass_fields__)


def load_settings(base: Settings | None = None, **given: Any) -> Settings:
    """``base`` (or the environment, when ``None``) with the ``given`` values that are not
    ``None`` on top, checked; a bad value raises :class:`~zart.ConfigurationError` naming it."""
    chosen = {name: value for name, value in given.items() if value is not None}
    try:
        if base is None:
            return Settings(**chosen)
        if not chosen:
            return base
        return Settings(**{**base.model_dump(), **chosen})
    except ValidationError as exc:
        raise ConfigurationError(_problems(exc)) from None


def _problems(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        name = Settings.model_fields.get(where)
        variable = "ZART_SCHEMA" if where == "database_schema" else ENV_PREFIX + where.upper()
        label = f"{where} ({variable})" if name is not None else where or "settings"
        message = str(problem["msg"]).removeprefix("Value error, ")
        problems.append(f"{label}: {message}")
    return "invalid Zart settings: " + "; ".join(problems)
