"""The rules every name and id obeys before it reaches a column: execution ids, task names,
step names (after placeholders), event names, schedule names.

One rule, checked where values enter (``start``, ``offer_event``, ``@zart.durable``,
``@zart.step``, a step call's formatted name, ``add_schedule``), so the core never meets a
value the database would refuse: a non-empty string of at most the column's length
(:data:`MAX_LENGTH` characters, taken from the models), with no NUL character (PostgreSQL text
cannot hold it) and no lone surrogate (not valid Unicode, so not encodable as UTF-8). A value
that breaks it raises :class:`~zart.errors.InvalidName` naming what it is and the problem;
the HTTP API answers 422 and the CLI exits 1 with that line.

Execution ids and event names also sit in URL paths (``/api/v1/executions/{id}``,
``/api/v1/events/{id}/{event}``), one path segment each, as in the original server. A ``/``
would split the segment, so such an execution could never be reached over HTTP (its start
would succeed, then every get, cancel, wait and event answer 404): :func:`check_path_segment`
refuses them where they enter, rather than routing them with a path converter that would make
``/executions/a/cancel`` ambiguous.
"""

from __future__ import annotations

from zart.errors import InvalidName
from zart.models.tables import ID

#: Longest name or id, in characters: the ``VARCHAR`` length of every name column.
MAX_LENGTH = ID

_SHOWN = 40  # characters of a refused value quoted in the message


def check_name(value: object, what: str, *, max_length: int = MAX_LENGTH) -> str:
    """Return ``value`` if it is a valid ``what`` (``"execution id"``, ``"step name"``...),
    else raise :class:`~zart.errors.InvalidName`."""
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidName(f"{what} must not be empty or blank")
    if len(value) > max_length:
        raise InvalidName(
            f"{what} {_shown(value)} is {len(value)} characters long; at most {max_length} fit"
        )
    if "\x00" in value:
        raise InvalidName(f"{what} {_shown(value)} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidName(
                f"{what} {_shown(value)} contains a lone surrogate (not valid Unicode)"
            ) from None
    return value


def check_path_segment(value: object, what: str, *, max_length: int = MAX_LENGTH) -> str:
    """:func:`check_name`, and no ``/``: for execution ids and event names, which the HTTP API
    routes on as one path segment each (and schedule names, which begin their executions'
    ids)."""
    name = check_name(value, what, max_length=max_length)
    if "/" in name:
        raise InvalidName(
            f"{what} {_shown(name)} contains '/': it could not be reached over the HTTP API"
        )
    return name


def _shown(value: str) -> str:
    return repr(value) if len(value) <= _SHOWN else f"{value[:_SHOWN]!r}..."


#: What a task's compensation task is named: ``"<task>:on_cancel"`` (``@zart.durable(...,
#: on_cancel=fn)``).
COMPENSATION_SUFFIX = ":on_cancel"


def compensation_of(task_name: str) -> str:
    """The task name of ``task_name``'s compensation, the execution started when one of its
    executions is cancelled (if it declares ``on_cancel``)."""
    return task_name + COMPENSATION_SUFFIX
