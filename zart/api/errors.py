"""Every error answer in one envelope, ``{"error": {"code": "...", "message": "..."}}``, with
a stable ``code`` per cause. ``zart.api.auth.GuardedRoute`` applies it to the router's own
routes, so it holds wherever the router is mounted; :func:`install_error_handlers` covers the
rest of an app made by ``create_app`` (unknown paths, wrong methods)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zart.database import mask_credentials
from zart.errors import (
    EventAlreadyDelivered,
    EventDoesNotFit,
    EventNotAccepted,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidPayload,
    InvalidQueue,
    InvalidSchedule,
    MigrationError,
    PauseRuleNotFound,
    QueueNotFound,
    RunNotFound,
    ScheduleNotFound,
    StepNotFound,
    UnknownTask,
    WaitTimedOut,
    ZartError,
)
from zart.logs import log

#: Zart errors -> (HTTP status, stable code). Subclasses before their bases.
ZART_ERRORS: tuple[tuple[type[ZartError], int, str], ...] = (
    (ExecutionNotFound, 404, "execution_not_found"),
    (RunNotFound, 404, "run_not_found"),
    (StepNotFound, 404, "step_not_found"),
    (PauseRuleNotFound, 404, "pause_rule_not_found"),
    (QueueNotFound, 404, "queue_not_found"),
    (InvalidQueue, 422, "invalid_queue"),
    (ScheduleNotFound, 404, "schedule_not_found"),
    (UnknownTask, 404, "unknown_task"),
    (ExecutionAlreadyExists, 409, "execution_already_exists"),
    (EventNotAccepted, 409, "event_not_accepted"),
    (EventAlreadyDelivered, 409, "event_already_delivered"),
    (InvalidExecutionState, 409, "invalid_execution_state"),
    (EventDoesNotFit, 422, "event_does_not_fit"),
    (InvalidPayload, 422, "invalid_payload"),
    (InvalidSchedule, 422, "invalid_schedule"),
    (WaitTimedOut, 504, "wait_timed_out"),
    (MigrationError, 503, "database_not_migrated"),
)

#: Codes of the answers that do not come from a Zart error.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    500: "internal_error",
    503: "database_unavailable",
    504: "timeout",
}


class ApiError(HTTPException):
    """An answer with a specific envelope ``code`` (e.g. ``execution_terminal``)."""

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, message, headers)
        self.code = code


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def response_for(exc: Exception) -> Response:
    """The envelope answer for an exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, str(exc.detail), exc.headers)
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8): malformed input, like JSON
        # that does not parse, is a 422 here.
        return error_response(422, "validation_error", f"malformed request body: {exc.detail}")
    if isinstance(exc, StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)
    if isinstance(exc, RequestValidationError):
        return error_response(422, "validation_error", _validation_message(exc))
    if isinstance(exc, ZartError):
        for kind, status, code in ZART_ERRORS:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        return _internal(exc)
    if isinstance(exc, UnicodeError):  # text that is not valid Unicode (a lone surrogate)
        return error_response(422, "invalid_payload", f"text is not valid Unicode: {exc}")
    if isinstance(exc, SQLAlchemyError | OSError):
        # Unreachable, refusing our credentials, or not migrated: /readyz says 503 for the
        # same causes, and so do the routes. The log has the driver's words (no password).
        log("database_unavailable", f"database error: {mask_credentials(str(exc))}", level=30)
        return error_response(503, "database_unavailable", "the database is unreachable")
    return _internal(exc)


def _internal(exc: Exception) -> Response:
    log("api_error", f"unexpected error: {exc!r}", level=40)
    return error_response(500, "internal_error", "internal error; see the server log")


#: Exceptions a guarded route turns into envelope answers (anything else is a bug: 500).
HANDLED = (HTTPException, RequestValidationError, ZartError, UnicodeError, SQLAlchemyError, OSError)


def install_error_handlers(app: FastAPI) -> None:
    """Envelope answers for what happens outside the router: unknown paths (404), wrong
    methods (405), oversized bodies (413), validation of app-level routes (422)."""

    async def on_error(_request: Request, exc: Exception) -> Response:
        return response_for(exc)

    app.add_exception_handler(StarletteHTTPException, on_error)
    app.add_exception_handler(RequestValidationError, on_error)
    app.add_exception_handler(ZartError, on_error)
