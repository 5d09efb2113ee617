"""The rules for the names a user gives and the HTTP API routes on: execution ids and event
names. One place decides, so ``start``, ``offer_event``, ``wait_for_event``, the HTTP API and
the CLI refuse the same values with the same words.

Execution ids and event names sit in URL paths (``/api/v1/executions/{id}``,
``/api/v1/events/{id}/{event}``), one path segment each, as in the original server. A ``/``
would split the segment, so such an execution could never be reached over HTTP (its start
would succeed, then every get, cancel, wait and event answer 404). They are refused when they
enter instead, rather than routed with a path converter that would make
``/executions/a/cancel`` ambiguous.
"""

from __future__ import annotations

from zart.errors import InvalidPayload

#: Longest stored identifier (the columns are ``VARCHAR(255)``).
MAX_NAME_LENGTH = 255


def check_path_name(value: object, what: str) -> str:
    """``value`` if it is a name that fits one URL path segment and its column; otherwise
    :class:`~zart.InvalidPayload` naming ``what`` and the problem."""
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{what} must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidPayload(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise InvalidPayload(f"{what} contains NUL")
    if "/" in value:
        raise InvalidPayload(
            f"{what} {value!r} contains '/': it could not be reached over the HTTP API"
        )
    return value


def check_execution_id(value: object) -> str:
    return check_path_name(value, "execution_id")


def check_event_name(value: object) -> str:
    return check_path_name(value, "an event's name")
