"""Stored exceptions: :func:`encode_exception` / :func:`decode_exception`."""

from __future__ import annotations

from zart.errors import SerializationError, StoredError, WorkerSignal
from zart.serialization.common import Failure, JSONValue, check_readable, storable_text
from zart.serialization.typed import class_path, decode, encode, import_class


def encode_exception(exc: BaseException) -> JSONValue:
    """Store an exception as ``{"type": "module:QualName", "args": ..., "message": str(exc)}``.

    ``"args"`` is ``encode(exc.args)``, or ``None`` when an argument cannot be stored or the
    class cannot be imported back (then :func:`decode_exception` gives a
    :class:`~zart.errors.StoredError`). Tracebacks, causes and attributes not passed through
    ``args`` are not kept. Never raises for an unstorable exception.
    """
    cls = type(exc)
    type_name = storable_text(f"{cls.__module__}:{cls.__qualname__}")
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the original failure
        message = f"<{cls.__qualname__} with an unprintable message>"
    args: JSONValue = None
    try:
        class_path(cls, exc)
        args = encode(exc.args)
    except (Failure, SerializationError):
        pass
    return {"type": type_name, "args": args, "message": storable_text(message)}


def decode_exception(data: JSONValue) -> Exception:
    """Rebuild an exception stored by :func:`encode_exception`.

    Gives an instance of the same class built from the same args when the class is an
    ``Exception`` (not a ``BaseException`` such as ``SystemExit``, and not a
    :class:`~zart.errors.WorkerSignal`) in a module this process has imported, and
    ``cls(*args)`` reproduces both the args and the message; otherwise a
    :class:`~zart.errors.StoredError` carrying ``type_name`` and ``message``: a stored row
    can never make a worker exit, or let go of an execution.
    """
    check_readable(data)
    if (
        type(data) is not dict
        or type(data.get("type")) is not str
        or type(data.get("message")) is not str
    ):
        raise SerializationError(f"corrupt stored error {data!r}: needs 'type' and 'message'")
    type_name: str = data["type"]  # type: ignore[assignment]
    message: str = data["message"]  # type: ignore[assignment]
    rebuilt = _rebuild_exception(type_name, data.get("args"), message)
    return rebuilt if rebuilt is not None else StoredError(type_name, message)


def _rebuild_exception(type_name: str, stored_args: JSONValue, message: str) -> Exception | None:
    if stored_args is None:
        return None
    try:
        cls = import_class(type_name)
        args = decode(stored_args)
        if (
            not (isinstance(cls, type) and issubclass(cls, Exception))
            or issubclass(cls, WorkerSignal)
            or type(args) is not tuple
        ):
            return None
        rebuilt = cls(*args)
        # A constructor that reshapes its arguments (formats a message, stores a field
        # elsewhere) would give a different exception: prefer the honest fallback.
        if rebuilt.args != args or str(rebuilt) != message:
            return None
    except Exception:
        return None
    return rebuilt
