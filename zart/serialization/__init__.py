"""Stored JSON for step outcomes, payloads and errors, without pickle.

Two formats live here:

- **Typed replay** (:func:`encode` / :func:`decode`): a step's return value is stored so that
  replay gives back a value that is *equal and of the same type at every level*, whether or not
  the function was annotated. Plain JSON stays plain; a value JSON cannot describe becomes a
  *tag*, a dict whose reserved key ``"$zart"`` names the kind. A step that returned
  ``{"user": User(id=UUID(...), tags=("a", "b")), "at": datetime(2026, 1, 1, tzinfo=UTC)}``
  is stored as::

      {
        "user": {"$zart": "model", "type": "app.models:User",
                 "v": {"id": {"$zart": "uuid", "v": "6f1c...e2"},
                       "tags": {"$zart": "tuple", "v": ["a", "b"]}}},
        "at": {"$zart": "datetime", "v": "2026-01-01T00:00:00+00:00"}
      }

- **Plain JSON** (:func:`to_json` / :func:`from_json`): payloads and results that outside
  clients (the HTTP API, the admin UI) read, shaped by pydantic and an optional annotation.

Every check happens while encoding, before anything is written: text containing a NUL character
(PostgreSQL's JSONB cannot hold it), values of unsupported types, and classes that cannot be
imported back (defined inside a function) raise :class:`~zart.errors.SerializationError` naming
the place inside the value, e.g. ``result['items'][2]: cannot store a value of type socket``.

Classes are stored as ``"module:QualName"`` and imported when read back. Decoding only ever
calls the constructor of a class that is an Enum, a pydantic model, a dataclass, a named tuple
or an exception (checked before the call), so stored data cannot name an arbitrary callable.
"""

from zart.serialization.common import TAG, JSONValue, check_readable
from zart.serialization.exceptions import decode_exception, encode_exception
from zart.serialization.plain import check_size, from_json, to_json
from zart.serialization.typed import decode, encode

__all__ = [
    "TAG",
    "JSONValue",
    "check_readable",
    "check_size",
    "decode",
    "decode_exception",
    "encode",
    "encode_exception",
    "from_json",
    "to_json",
]
