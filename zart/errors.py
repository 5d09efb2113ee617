"""Zart's exception hierarchy. Every error Zart raises derives from :class:`ZartError`.

- Configuration and input: :class:`ConfigurationError`, :class:`InvalidPayload`,
  :class:`EventDoesNotFit`, :class:`InvalidName`, :class:`SerializationError`, :class:`UnknownTask`.
- Control plane: :class:`ExecutionNotFound`, :class:`ExecutionAlreadyExists`.
- Admin operations: :class:`StepNotFound`, :class:`PauseRuleNotFound`,
  :class:`InvalidExecutionState`.
- Schedules: :class:`InvalidSchedule` (a configuration error), :class:`ScheduleNotFound`.
- Queues: :class:`InvalidQueue` (a configuration error), :class:`QueueNotFound`.
- Published values and streams: :class:`PublishedValueTimeout`, :class:`NothingPublished`,
  :class:`StreamClosed`.
- Storage: :class:`LeaseLost` (a fenced write refused because another worker took over),
  :class:`MigrationError` and its :class:`SchemaMissing` (Zart's tables not created yet) and
  :class:`SchemaOutdated` (created by an older Zart, not upgraded since).
- Runtime: :class:`OutsideExecution`, :class:`NoStepTransaction` (``zart.session()`` outside a
  transactional step), the step failures and replay errors below.
"""

from __future__ import annotations


class ZartError(Exception):
    """Base class of every error raised by Zart."""


class ConfigurationError(ZartError):
    """Zart was set up wrongly: a bad database URL, option or registration."""


class MigrationError(ZartError):
    """The database schema could not be migrated or is not at the expected revision."""


class SchemaMissing(MigrationError):
    """Zart's tables are not in the database (``table`` is the one a statement needed): run
    ``zart db upgrade`` or ``await scheduler.migrate()`` first."""

    def __init__(self, table: str, url: str, schema: str | None = None) -> None:
        self.table = table
        self.url = url
        self.schema = schema
        where = url if schema is None else f"{url}, schema {schema!r}"
        super().__init__(
            f"Zart's tables are missing from {where} (no table {table}): create them with"
            " `zart db upgrade` or `await scheduler.migrate()`"
        )


class SchemaOutdated(MigrationError):
    """Zart's tables are older than this version of Zart: a statement needed ``column``, which
    a newer migration adds, or (``zart worker`` and ``zart serve`` check at start) the database
    is at ``revision``, before this Zart's ``head``. Run ``zart db upgrade`` or ``await
    scheduler.migrate()``."""

    def __init__(
        self,
        column: str | None,
        table: str | None,
        url: str,
        schema: str | None = None,
        *,
        revision: str | None = None,
        head: str | None = None,
    ) -> None:
        self.column = column
        self.table = table
        self.url = url
        self.schema = schema
        self.revision = revision
        self.head = head
        where = url if schema is None else f"{url}, schema {schema!r}"
        if column is not None:
            why = f"no column {column if table is None else f'{table}.{column}'}"
        else:
            why = f"at revision {revision}, this Zart needs {head}"
        super().__init__(
            f"Zart's tables in {where} are older than this version of Zart ({why}):"
            " upgrade them with `zart db upgrade` or `await scheduler.migrate()`"
        )


class InvalidPayload(ZartError, ValueError):
    """A payload, result or event failed validation or cannot be stored."""


class EventDoesNotFit(InvalidPayload):
    """An offered event's payload does not fit the JSON schema of the ``model=`` its wait
    recorded; ``problems`` names each misfit (``"approved: 'yes' is not of type 'boolean'"``).
    Nothing was stored."""

    def __init__(self, execution_id: str, name: str, problems: list[str]) -> None:
        super().__init__(
            f"event {name!r} does not fit the model execution {execution_id!r} waits for: "
            + "; ".join(problems)
        )
        self.execution_id = execution_id
        self.name = name
        self.problems = problems


class InvalidName(InvalidPayload):
    """An execution id, task, step, event or schedule name that cannot be stored: empty, longer
    than its column, or containing NUL or a lone surrogate (rules: :mod:`zart.models.names`).
    Nothing was stored."""


class SerializationError(InvalidPayload):
    """A value cannot be turned into stored JSON (or back) without losing its meaning."""


class UnknownTask(ZartError, LookupError):
    """No durable handler is registered under this task name."""

    def __init__(self, task_name: str) -> None:
        super().__init__(
            f"unknown task {task_name!r}: no durable handler is registered under that name"
        )
        self.task_name = task_name


class ExecutionNotFound(ZartError, LookupError):
    """No execution has this id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id {execution_id!r}")
        self.execution_id = execution_id


class RunNotFound(ZartError, LookupError):
    """The execution exists but has no run with this id."""

    def __init__(self, execution_id: str, run_id: str) -> None:
        super().__init__(f"execution {execution_id!r} has no run with id {run_id!r}")
        self.execution_id = execution_id
        self.run_id = run_id


class ExecutionAlreadyExists(ZartError):
    """An execution with this id exists with a different task or payload."""

    def __init__(self, execution_id: str, status: str, reason: str) -> None:
        super().__init__(f"execution {execution_id!r} already exists ({status}): {reason}")
        self.execution_id = execution_id
        self.status = status


class WorkerSignal(ZartError):
    """Base of the errors that steer a worker rather than report a failure (a lost lease, a
    checkpoint that could not be written). Never rebuilt from a stored error: a planted row
    naming one would make every worker that reads it let go of the execution, for ever."""


class LeaseLost(WorkerSignal):
    """A worker's write was refused: its lease on the execution expired and was taken over."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"lease on execution {execution_id!r} was lost; another worker owns it now"
        )
        self.execution_id = execution_id


class EventNotAccepted(ZartError):
    """The execution is finished or cancelled and takes no more events (or messages)."""

    def __init__(self, execution_id: str, status: str, what: str = "events") -> None:
        super().__init__(f"execution {execution_id!r} is {status} and accepts no {what}")
        self.execution_id = execution_id
        self.status = status


class EventAlreadyDelivered(ZartError):
    """An event with this name was already delivered to this execution."""

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__(f"event {name!r} was already delivered to execution {execution_id!r}")
        self.execution_id = execution_id
        self.name = name


class OutsideExecution(ZartError):
    """A function that needs a running durable execution was called outside of one."""


class NoStepTransaction(ZartError):
    """``zart.session()`` was called where there is no step transaction: outside a step
    declared with ``@zart.step(..., transactional=True)`` (and outside ``zart.use_session``)."""


class DuplicateStepName(ZartError):
    """Two steps (or a step and a capture) used one name in one run.

    Replay looks outcomes up by name, so the second one would silently receive the first one's
    stored result; Zart refuses instead. Give each call its own name (``{index}`` templates or
    ``.named(...)``).
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            f"step name {name!r} was used twice in one run; give each call a unique name"
            " (a {placeholder} in the step name, or .named(...) at the call site)"
        )
        self.name = name


class NonDeterministicReplay(ZartError):
    """Replay met a history that the handler's code no longer follows: a step inserted,
    removed, reordered or renamed, a changed kind, a stored value that no longer fits the
    step's return annotation (``docs/versioning.md``). ``step``: the recorded step where the
    code left the history; ``position``: its recorded position. Inside a worker the execution
    is then held for an operator (``zart resume-diverged`` / ``zart fail-diverged``)."""

    def __init__(self, message: str, *, step: str | None = None, position: int | None = None):
        super().__init__(message)
        self.step = step
        self.position = position

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_divergence, (str(self), self.step, self.position))


def _rebuild_divergence(message: str, step: str | None, position: int | None) -> Exception:
    return NonDeterministicReplay(message, step=step, position=position)


class RetryExhausted(ZartError):
    """A step failed on every attempt its retry policy allowed. ``last_error`` is the exception
    of the final attempt (the same class and arguments the step raised)."""

    def __init__(self, step: str, attempts: int, last_error: BaseException) -> None:
        super().__init__(
            f"step {step!r} failed after {attempts} attempts; last error: "
            f"{type(last_error).__name__}: {last_error}"
        )
        self.step = step
        self.attempts = attempts
        self.last_error = last_error

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.step, self.attempts, self.last_error))


class StepTimedOut(ZartError, TimeoutError):
    """A step ran past its deadline. Terminal: a timeout is never retried."""

    def __init__(self, step: str, timeout_seconds: float | None) -> None:
        limit = "its deadline" if timeout_seconds is None else f"{timeout_seconds:g}s"
        super().__init__(f"step {step!r} timed out after {limit}")
        self.step = step
        self.timeout_seconds = timeout_seconds


class ExecutionDeadlineExceeded(ZartError, TimeoutError):
    """The execution ran past the ``timeout`` of its durable handler."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} exceeded its deadline")
        self.execution_id = execution_id


class ExecutionFailed(ZartError):
    """``DurableScheduler.wait`` on an execution that failed. ``error`` is the stored failure."""

    def __init__(self, execution_id: str, error: object) -> None:
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(f"execution {execution_id!r} failed: {message or error}")
        self.execution_id = execution_id
        self.error = error


class ExecutionCancelled(ZartError):
    """``DurableScheduler.wait`` on an execution that was cancelled."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} was cancelled")
        self.execution_id = execution_id


class WaitTimedOut(ZartError, TimeoutError):
    """``DurableScheduler.wait`` gave up before the execution finished (it keeps running)."""

    def __init__(self, execution_id: str, timeout: float) -> None:
        super().__init__(f"execution {execution_id!r} did not finish within {timeout:g}s")
        self.execution_id = execution_id
        self.timeout = timeout


class StoredError(ZartError):
    """An error recorded by an earlier run whose own class cannot be rebuilt here.

    Replay re-raises a step's exception as its own class when the class can be imported and
    rebuilt from the stored args; otherwise (class renamed or gone, a constructor that reshapes
    its arguments, args that could not be stored) it raises this, with the original class's
    ``module:QualName`` in ``type_name`` and its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


class EventTimeout(ZartError, TimeoutError):
    """``zart.wait_for_event`` reached its timeout before the event arrived. Stored as an
    explicit timed-out outcome: replays raise it again."""

    def __init__(self, name: str, timeout_seconds: float | None = None) -> None:
        after = "" if timeout_seconds is None else f" within {timeout_seconds:g}s"
        super().__init__(f"event {name!r} did not arrive{after}")
        self.name = name
        self.timeout_seconds = timeout_seconds

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.timeout_seconds))


class StepNotFound(ZartError, LookupError):
    """The execution's current run has no step with this name."""

    def __init__(self, execution_id: str, step: str) -> None:
        super().__init__(f"execution {execution_id!r} has no step {step!r} in its current run")
        self.execution_id = execution_id
        self.step = step


class PauseRuleNotFound(ZartError, LookupError):
    """No active pause rule has this id."""

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"no active pause rule with id {rule_id!r}")
        self.rule_id = rule_id


class InvalidExecutionState(ZartError):
    """An admin operation does not apply to the execution (or step) as it stands now, e.g.
    retrying a step that did not fail. Nothing was changed."""

    def __init__(self, execution_id: str, reason: str) -> None:
        super().__init__(f"execution {execution_id!r}: {reason}")
        self.execution_id = execution_id
        self.reason = reason


class InvalidSchedule(ConfigurationError, ValueError):
    """A schedule was declared wrongly: a malformed or never-firing cron expression, an unknown
    time zone, an unknown overlap or catch-up policy. Raised at registration; nothing is
    stored."""


class ScheduleNotFound(ZartError, LookupError):
    """No schedule has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class InvalidQueue(ConfigurationError, ValueError):
    """A queue was declared or changed wrongly: a bad name, a limit that is not a whole number
    of at least 1, a malformed rate limit (``"N/period"``), a bad priority or partition key.
    Nothing was stored."""


class QueueNotFound(ZartError, LookupError):
    """No queue of that name is stored (declare it with ``zart.Queue`` in a module a worker
    imports, or set it with ``zart queues set``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no queue named {name!r}")
        self.name = name


class PublishedValueTimeout(ZartError, TimeoutError):
    """``DurableScheduler.get_published`` gave up before the execution published a value under
    the key (the execution keeps running)."""

    def __init__(self, execution_id: str, key: str, timeout: float) -> None:
        super().__init__(
            f"execution {execution_id!r} published no value under {key!r} within {timeout:g}s"
        )
        self.execution_id = execution_id
        self.key = key
        self.timeout = timeout


class StreamClosed(ZartError):
    """``zart.write_stream`` (or ``close_stream``) on a stream its execution closed already."""

    def __init__(self, execution_id: str, key: str) -> None:
        super().__init__(f"stream {key!r} of execution {execution_id!r} is closed")
        self.execution_id = execution_id
        self.key = key


class NothingPublished(ZartError, LookupError):
    """``DurableScheduler.get_published``: the execution finished without publishing a value
    under the key, so none will come."""

    def __init__(self, execution_id: str, key: str, status: str) -> None:
        super().__init__(
            f"execution {execution_id!r} is {status} and published no value under {key!r}"
        )
        self.execution_id = execution_id
        self.key = key
        self.status = status


class ChildFailed(ZartError):
    """A child execution (``zart.run_child``, ``handle.result()``) failed with an error whose
    own class cannot be rebuilt here, or was cancelled. A child's error whose class is
    importable is raised as itself, like a step's business error."""

    def __init__(self, child_execution_id: str, status: str, message: str) -> None:
        super().__init__(child_execution_id, status, message)
        self.child_execution_id = child_execution_id
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"child execution {self.child_execution_id!r} {self.status}: {self.message}"


class RecvTimeout(ZartError, TimeoutError):
    """``zart.recv`` reached its timeout before a message of the topic arrived. Stored as an
    explicit timed-out outcome, like :class:`EventTimeout`: replays raise it again."""

    def __init__(self, topic: str, timeout_seconds: float | None = None) -> None:
        after = "" if timeout_seconds is None else f" within {timeout_seconds:g}s"
        super().__init__(f"no message on topic {topic!r} arrived{after}")
        self.topic = topic
        self.timeout_seconds = timeout_seconds

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.topic, self.timeout_seconds))
