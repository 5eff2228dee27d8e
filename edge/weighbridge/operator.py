"""Operator input of a weighbridge: JSON lines appended to a file by the operator console or by
the IC-card reader bridge, and the durable ticket-book state (open grosses, stored tares).

A line is either a full entry, `{"plate": "沪A12345", "category": "recyclable", "subcategory":
"paper", "source_area": "A07", "destination": "…", "tare": "weigh"}`, or a card swipe,
`{"card": "0012345678"}`, which the config's card table turns into the entry issued with that
card. The card number itself is never sent: only the plate it stands for.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from contract.errors import first_error
from edge.errors import ConfigError
from edge.weighbridge.tickets import OperatorEntry, TicketBook, Weighing

log = logging.getLogger(__name__)

MAX_LINE = 4096  # bytes; a longer line is not an operator entry
MAX_READ = 1 << 20  # bytes read per poll at most


class OperatorInput:
    """Tails a JSON-lines file from where it ended when opened; bad lines are counted and skipped."""

    def __init__(self, path: Path, cards: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self.path = path
        self.cards = dict(cards or {})
        self.bad: Counter[str] = Counter()
        self._offset: int | None = None
        self._partial = b""

    def poll(self) -> list[OperatorEntry]:
        """Entries appended since the last poll (the first poll only finds the file's end)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if self._offset is None or size < self._offset:  # first look, or the file was replaced
            self._offset, self._partial = size, b""
            return []
        if size == self._offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read(min(size - self._offset, MAX_READ))
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > MAX_LINE:
            self.bad["too_long"] += 1
            self._partial = b""
        out = []
        for raw in lines:
            entry = self.parse(raw)
            if entry is not None:
                out.append(entry)
        return out

    def parse(self, raw: bytes) -> OperatorEntry | None:
        """One line as an entry, or None (counted by reason, logged without the line's digits)."""
        if not raw.strip():
            return None
        if len(raw) > MAX_LINE:
            self.bad["too_long"] += 1
            return None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.bad["not_json"] += 1
            log.warning("operator input: a line that is not JSON was skipped")
            return None
        if isinstance(doc, dict) and set(doc) == {"card"}:
            card = doc["card"]
            issued = self.cards.get(card) if isinstance(card, str) else None
            if issued is None:
                self.bad["unknown_card"] += 1
                log.warning("operator input: a card not in the card table was swiped")
                return None
            doc = {**issued, "plate_source": "card"}
        elif isinstance(doc, dict) and isinstance(doc.get("plate"), str):
            doc = {**doc, "plate": doc["plate"].strip().upper()}
        try:
            return OperatorEntry.model_validate(doc)
        except ValidationError as exc:
            self.bad["invalid"] += 1
            log.warning("operator input: entry refused: %s", first_error(exc)[:200])
            return None


def save_book(path: Path, book: TicketBook) -> None:
    """Write the book's open grosses and stored tares atomically (temp file, fsync, rename)."""
    doc = {
        "stored_tares": book.stored_tares,
        "open": [
            {"entry": w.entry.model_dump(mode="json"), "grams": w.grams, "ts_ms": w.ts_ms}
            for w in book.open.values()
        ],
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_book(path: Path, book: TicketBook) -> TicketBook:
    """The book with the state saved in `path` (if any) over its configured stored tares;
    ConfigError (one line) when the file is unreadable or not what save_book writes."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        tares = {str(k): int(v) for k, v in doc.get("stored_tares", {}).items()}
        opened = [
            Weighing(OperatorEntry.model_validate(i["entry"]), int(i["grams"]), int(i["ts_ms"]))
            for i in doc.get("open", [])
        ]
    except FileNotFoundError:
        return book
    except OSError as exc:
        raise ConfigError(f"weighbridge.state_file {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # incl. ValidationError
        raise ConfigError(
            f"weighbridge.state_file {path} is damaged ({type(exc).__name__}); "
            "move it away to start with no open grosses"
        ) from None
    book.stored_tares = {**book.stored_tares, **tares}
    book.open.update({w.entry.plate: w for w in opened})
    return book
