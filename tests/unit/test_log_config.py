"""zart.logs.configure: records on stderr unless the application configured logging."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

from zart.logs import JsonFormatter, TextFormatter, configure


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without handlers (pytest's own capture handlers put back after)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield root
    finally:
        root.handlers, root.level = saved, level


def test_an_application_logging_config_is_left_alone() -> None:
    with bare_root() as root:
        theirs = logging.NullHandler()
        root.addHandler(theirs)
        root.setLevel(logging.ERROR)
        assert configure("DEBUG", "json") is False
        assert root.handlers == [theirs]
        assert root.level == logging.ERROR


def test_without_one_a_handler_at_the_level_is_added() -> None:
    with bare_root() as root:
        assert configure("WARNING", "json") is True
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.WARNING


def record(**extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "zart", "levelname": "INFO", "msg": "step ran"})
    made.__dict__.update(extra)
    return made


def test_text_lines_carry_the_action_and_fields() -> None:
    line = TextFormatter().format(
        record(action="step_succeeded", execution_id="e1", task_name="t", step_name="s")
    )
    assert line.endswith(
        " INFO zart step_succeeded: step ran execution_id=e1 task_name=t step_name=s"
    )


def test_json_lines_are_one_object() -> None:
    line = JsonFormatter().format(record(action="step_succeeded", execution_id="e1"))
    assert "\n" not in line
    document = json.loads(line)
    assert document["action"] == "step_succeeded"
    assert document["execution_id"] == "e1"
    assert document["message"] == "step ran"
