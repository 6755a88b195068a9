"""The work one request may do: rows read from the store and time.

``gateway.http.deps.authenticated`` starts a ``WorkBudget`` for every
authenticated request (``Settings.work_budget_ms`` and
``work_budget_rows``) in a context variable. The request's work sees it
wherever it runs: on the event loop, and in the thread pool, since
``anyio.to_thread.run_sync`` (and Starlette's ``run_in_threadpool``, which
calls it) runs each call in a copy of the caller's context. Threads of the
gateway's own (the audit writer, the checkpointer, ANALYZE, the delivery
worker) start with an empty context and so have no budget.

The stores spend it:

- **Rows**: every row a statement hands back to Python (``select``, the
  ``read_many`` family, history) is charged; past the budget the request
  is ended. A search that reads and decides many candidates, a document
  over a person with a long record, includes that fan out: all are counted.
- **Time**: checked before each statement, and inside the database while
  one runs, so a statement that runs away is stopped where it is: SQLite
  calls a progress handler every few thousand steps of its virtual machine,
  which returns nonzero once the deadline has passed (the statement ends
  with ``interrupted``); PostgreSQL is given ``statement_timeout`` on the
  connection before the statement, the time left to the request.

Either way the request ends with ``TooCostly`` (422, issue ``too-costly``,
naming the budget and its configured value), raised inside whatever unit
of work was open: it rolls back, nothing of it is written (a transaction
is one; a batch's entries before it stand, as a batch's do). Once a
budget is spent every later charge or check raises again, so code that
goes on after catching one refusal (a batch, answering each entry) ends
each further entry at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from gateway import metrics
from gateway.errors import TooCostly

_ROWS_REFUSED = metrics.LIMITS_REFUSED.labels(limit="work-rows")
_TIME_REFUSED = metrics.LIMITS_REFUSED.labels(limit="work-time")


class WorkBudget:
    """One request's allowance. Not shared between requests; charged from
    one thread at a time (a request's work is sequential)."""

    __slots__ = ("budget_ms", "deadline", "max_rows", "rows", "spent")

    def __init__(self, budget_ms: int, max_rows: int, now: float | None = None) -> None:
        self.budget_ms = budget_ms
        self.max_rows = max_rows
        started = time.monotonic() if now is None else now
        # A budget of 0 is none: no deadline, or no row limit.
        self.deadline = started + budget_ms / 1000 if budget_ms > 0 else math.inf
        self.rows = 0
        self.spent: str | None = None  # "rows" or "time", once refused

    def lift(self) -> None:
        """No budget for the rest of the request: for work bounded some
        other way, which ending half-way would leave half-done (a push,
        bounded by the body's size and committed record by record)."""
        self.budget_ms = 0
        self.max_rows = 0
        self.deadline = math.inf

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def remaining_ms(self) -> int:
        """Whole milliseconds left (at least 1); refuses the request if none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.time_spent()
        return max(1, math.ceil(left * 1000))

    def check(self) -> None:
        """Refuse the request if its time is up, or it was refused already."""
        if self.spent == "rows":
            raise self.rows_spent()
        if time.monotonic() >= self.deadline:
            raise self.time_spent()

    def charge(self, rows: int) -> None:
        """Count ``rows`` read; refuse the request past either budget."""
        self.rows += rows
        if self.max_rows > 0 and self.rows > self.max_rows:
            raise self.rows_spent()
        if time.monotonic() >= self.deadline:
            raise self.time_spent()

    def rows_spent(self) -> TooCostly:
        if self.spent is None:
            self.spent = "rows"
            _ROWS_REFUSED.inc()
        return TooCostly(
            f"this request read more than the {self.max_rows} rows one request may read "
            "(work budget rows, GATEWAY_WORK_BUDGET_ROWS) and was ended, what it had begun "
            "rolled back; narrow it (by patient, code or date, say, or a smaller _count)",
            code="GW-0330",
        )

    def time_spent(self) -> TooCostly:
        if self.spent is None:
            self.spent = "time"
            _TIME_REFUSED.inc()
        return TooCostly(
            f"this request worked for longer than the {self.budget_ms} ms one request may "
            "take (work budget time, GATEWAY_WORK_BUDGET_MS) and was ended, what it had begun "
            "rolled back; narrow it (by patient, code or date, say, or without a sort)",
            code="GW-0331",
        )


_CURRENT: ContextVar[WorkBudget | None] = ContextVar("gateway_work_budget", default=None)


def start(budget_ms: int, max_rows: int) -> WorkBudget:
    """Give the running request (this context, and the thread-pool work it
    starts from now) a budget of its own."""
    budget = WorkBudget(budget_ms, max_rows)
    _CURRENT.set(budget)
    return budget


@contextmanager
def started(budget_ms: int, max_rows: int) -> Iterator[WorkBudget]:
    """A budget for the work inside the block only (a request's task ends
    with its context; other callers, tests and tools, need it undone)."""
    token = _CURRENT.set(WorkBudget(budget_ms, max_rows))
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        _CURRENT.reset(token)


def current() -> WorkBudget | None:
    """The running request's budget; ``None`` outside a request."""
    return _CURRENT.get()


def charge(rows: int) -> None:
    """Charge ``rows`` read to the running request, if there is one."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.charge(rows)


def check() -> None:
    """Refuse the running request if its budget is spent."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.check()


def interrupt() -> int:
    """SQLite's progress handler: nonzero (end the statement) once the
    running request's time is up."""
    budget = _CURRENT.get()
    return 1 if budget is not None and time.monotonic() >= budget.deadline else 0


def spent(exc: BaseException) -> TooCostly | None:
    """What a statement the database ended for the budget (SQLite's
    ``interrupted``, PostgreSQL's ``statement_timeout``) is: the running
    request's refusal, if its budget is spent; ``None`` if it is not (the
    statement was ended for some other reason)."""
    budget = _CURRENT.get()
    if budget is None:
        return None
    if budget.spent == "rows":
        return budget.rows_spent()
    if budget.spent == "time" or budget.expired():
        return budget.time_spent()
    return None
