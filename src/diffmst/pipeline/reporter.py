"""Where a job's notices and progress go: the command line prints them, a web page can
stream them, tests collect them. Library code takes a :class:`Reporter` (or its
``notice``) and never prints.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

Update = Callable[..., None]  # update(done, total=None, **fields)


class Reporter:
    """Drops everything; subclasses show or keep it."""

    def notice(self, msg: str) -> None:
        """Something the user should know (a resampled track, a clamped gain)."""

    @contextmanager
    def task(self, name: str, total: int | None = None, **fields: Any) -> Iterator[Update]:
        """A stage of work, e.g. ``with reporter.task("rendering") as update: ...``; ``update(done,
        total=None, **fields)`` reports how far it got (``fields``: e.g. the current loss)."""
        yield _ignore


def _ignore(*_args: Any, **_fields: Any) -> None:
    pass


class Collect(Reporter):
    """Keeps notices and the last update of every task (for tests and callers that log)."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.tasks: dict[str, dict] = {}

    def notice(self, msg: str) -> None:
        self.notices.append(msg)

    @contextmanager
    def task(self, name: str, total: int | None = None, **fields: Any) -> Iterator[Update]:
        state = self.tasks.setdefault(name, {"done": 0, "total": total, **fields})

        def update(done: int, total: int | None = None, **more: Any) -> None:
            state.update(done=done, **({"total": total} if total is not None else {}), **more)

        yield update
