"""Card taps in the agent: the next deposit carries the pseudonym; the card number is stored nowhere."""

from __future__ import annotations

from pathlib import Path

from contract import WasteReading, now_ms, pseudonymize
from devstack.services import free_port
from edge.agent import WasteAgent
from edge.card import CardPseudonymizer
from edge.config import GatewayConfig
from edge.queue import DurableQueue
from firmware_sim.scales.serial_sim import PtyIndicator
from firmware_sim.scales.station import frames, staircase
from runtime.mqtt import MqttEndpoint
from tests.support.common import wait_until

KEY = bytes(range(32))
CARD = "31415926535"


def test_a_tap_names_the_next_deposit_and_the_card_number_never_reaches_the_queue(
    tmp_path: Path,
) -> None:
    with PtyIndicator() as pty:
        cfg = GatewayConfig.model_validate(
            {
                "site": "WS-0101",
                "broker": {
                    "url": "mqtt://127.0.0.1:1",
                    "credentials_file": str(tmp_path / "unused"),
                },
                "queue": {"path": str(tmp_path / "q.db")},
                "cards": {"district_key_file": str(tmp_path / "unused.key")},
                "devices": [
                    {"id": "WS-0101-S1", "category": "wet", "interface": "serial", "port": pty.port}
                ],
            }
        )
        down = MqttEndpoint(port=free_port())  # nobody listens: everything stays queued
        with DurableQueue.open(cfg.queue.path) as q:
            agent = WasteAgent(cfg, q, down, pseudonymizer=CardPseudonymizer(KEY))
            agent.start()
            try:
                agent.tap(now_ms() - 1000, CARD)
                pty.play(frames(staircase(3, now_ms(), fps=50), 3, checksum=False))
                wait_until(lambda: len(q) >= 3, what="three deposits queued")
            finally:
                agent.stop()
            got = [x.entry for x in q.peek() if isinstance(x.entry, WasteReading)]
        assert got[0].resident == pseudonymize(KEY, CARD)  # the tap names one deposit ...
        assert all(e.resident is None for e in got[1:])  # ... and only one
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("q.db*"))
    assert CARD.encode() not in raw and pseudonymize(KEY, CARD).encode() in raw
