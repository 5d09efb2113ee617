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

import re
from collections.abc import Iterable, Mapping

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


#: A tag key: what ``list_executions(tags=...)``, ``tag=key:value`` (HTTP) and ``--tag
#: key=value`` (CLI) name, so it holds neither ``:`` nor ``=``.
TAG_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,64}")
#: The most tags one execution carries.
MAX_TAGS = 32


def check_tags(tags: object, what: str = "tags") -> dict[str, str]:
    """``tags`` (``None`` or a mapping of tag keys to string values) as stored, sorted by key;
    else :class:`~zart.errors.InvalidName` naming the tag and the problem. A value follows the
    rule of names (:func:`check_name`)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidName(f"{what} must map tag keys to strings, not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise InvalidName(f"{what}: {len(tags)} tags; at most {MAX_TAGS} fit")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
            raise InvalidName(
                f"tag key {_shown(key) if isinstance(key, str) else repr(key)} is not 1 to 64"
                " letters, digits, '_', '-', '.' or '/'"
            )
        if not isinstance(value, str):
            raise InvalidName(f"tag {key!r} must be a string, not {type(value).__name__}")
        checked[key] = check_name(value, f"the value of tag {key!r}")
    return dict(sorted(checked.items()))


def parse_tags(items: Iterable[str], separator: str, what: str = "tag") -> dict[str, str]:
    """Tags written ``key<separator>value`` (``tenant:acme`` in an HTTP query, ``tenant=acme``
    on the command line), checked as :func:`check_tags` checks them; a malformed item or a
    key given twice raises :class:`~zart.errors.InvalidName`."""
    tags: dict[str, str] = {}
    for item in items:
        key, found, value = item.partition(separator)
        if not found:
            raise InvalidName(f"{what} {_shown(item)} is not key{separator}value")
        if key in tags:
            raise InvalidName(f"{what} {key!r} is given twice")
        tags[key] = value
    return check_tags(tags)
