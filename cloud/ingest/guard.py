"""A worker thread that dies ends the process (docs/decisions.md): a live worker that acknowledges
nothing would stall every site behind its share of the subscription."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_THREAD_DIED = 70  # EX_SOFTWARE: a worker thread died; systemd restarts the process

OnFatal = Callable[[str], None]


def guarded(loop: Callable[[], None], worker: str, on_fatal: OnFatal) -> Callable[[], None]:
    """A thread body running `loop` that, should it ever raise, logs one critical line and calls
    `on_fatal("<thread name> died: <exception type>")` instead of dying quietly."""

    def run() -> None:
        try:
            loop()
        except BaseException as exc:
            log.critical(
                "%s: thread %s died: %s: %s",
                worker,
                threading.current_thread().name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            on_fatal(f"{threading.current_thread().name} died: {type(exc).__name__}")

    return run


def exit_process(why: str) -> None:
    """End the whole process at once with a non-zero status (unacknowledged work stays with the
    broker and comes back to the restarted worker)."""
    logging.shutdown()
    os._exit(EXIT_THREAD_DIED)
