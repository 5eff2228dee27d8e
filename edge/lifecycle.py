"""What both gateway kinds (waste station, health hut) do around their work: open the durable queue
from `[queue]`, stop on SIGTERM/SIGINT, log stats on a rhythm, and turn the end into an exit code.
`edge.agent.run` and `edge.hut_gateway.run` build their gateway and hand it to `serve`."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol, TypeVar

from edge.config import PublishConfig, QueueConfig
from edge.publisher import PublishTuning
from edge.queue import DurableQueue

log = logging.getLogger(__name__)


class Gateway(Protocol):
    """The lifecycle `serve` drives: start() -> (stop_event set) -> stop(); `failed` says why."""

    stop_event: threading.Event

    @property
    def failed(self) -> str | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats_line(self) -> str: ...


G = TypeVar("G", bound=Gateway)


def open_queue(cfg: QueueConfig) -> DurableQueue:
    """The gateway's durable queue with the bounds of its `[queue]` section."""
    return DurableQueue.open(cfg.path, max_items=cfg.max_items, max_bytes=cfg.max_mb * 1024 * 1024)


def publish_tuning(p: PublishConfig, queue: QueueConfig) -> PublishTuning:
    """The publisher's tuning from a gateway's [publish] and [queue] sections."""
    return PublishTuning(
        batch_max=p.batch_max,
        max_inflight=p.max_inflight,
        backoff_min_s=p.backoff_min_s,
        backoff_max_s=p.backoff_max_s,
        status_interval_s=p.status_interval_s,
        replay_window_s=p.replay_window_s,
        replay_delay_s=p.replay_delay_s,
        keep_acked_s=queue.keep_acked_s,
    )


def stop_on_signals(stop_event: threading.Event) -> None:
    """SIGTERM (systemd's stop) and SIGINT (Ctrl-C) set `stop_event`; the main loop then stops."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def serve(
    gw: G,
    queue: DurableQueue,
    *,
    started: str,
    log_stats_s: float,
    on_started: Callable[[G], None] | None = None,
    tick: Callable[[], None] | None = None,
    tick_s: float = 1.0,
) -> int:
    """Start `gw`, log `started` with the queue's counts, call `tick` every `tick_s` (if any) and
    log stats every `log_stats_s` until stopped; stop, close the queue, return the exit code
    (1 when the gateway failed, else 0)."""
    stop_on_signals(gw.stop_event)
    gw.start()
    s = queue.stats()
    log.info("%s, %d entries pending, %d accepted so far", started, s.buffered, s.accepted)
    if on_started is not None:
        on_started(gw)
    wait_s = tick_s if tick is not None else log_stats_s
    next_stats = time.monotonic() + log_stats_s
    while not gw.stop_event.wait(wait_s):
        if tick is not None:
            tick()
        if time.monotonic() >= next_stats:
            log.info("stats: %s", gw.stats_line())
            next_stats += log_stats_s
    gw.stop()
    log.info("stopped: %s", gw.stats_line())
    queue.close()
    if gw.failed:
        log.error("gateway failed: %s", gw.failed)
        return 1
    return 0
