"""The team's resident roster (a local CSV of card number and name) and the district key: a
pseudonym to a person, and a typed or read card number to its pseudonym (contract/pseudonym.py)."""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from contract.pseudonym import CARD_PATTERN, pseudonymize
from staff.errors import StaffError

MAX_ROSTER_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Person:
    """One resident of the team's roster."""

    card: str
    name: str

    @property
    def masked_card(self) -> str:
        """The card number with all but its last 4 characters hidden (what a list shows)."""
        return "*" * (len(self.card) - 4) + self.card[-4:]


def check_card(card: str) -> str:
    """A card number as typed or read (spaces trimmed), or StaffError (never echoing it)."""
    card = card.strip()
    if not CARD_PATTERN.match(card):
        raise StaffError("a card number is 4-32 letters or digits")
    return card


def private_file(path: Path, what: str) -> str:
    """The text of a file only its owner may read (chmod 600), or StaffError."""
    try:
        st = path.stat()
        if st.st_size > MAX_ROSTER_BYTES:
            raise StaffError(f"{what} {path} is larger than {MAX_ROSTER_BYTES >> 20} MiB")
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StaffError(f"{what} {path} is readable by others; chmod 600 it")
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise StaffError(f"{what} {path}: {exc}") from None


class Roster:
    """Pseudonym -> person for the team's residents, computed here with the district key."""

    def __init__(self, key: bytes, people: list[Person]) -> None:
        self._key = key
        self._by_pseudonym = {pseudonymize(key, p.card): p for p in people}

    def __len__(self) -> int:
        return len(self._by_pseudonym)

    @classmethod
    def load(cls, path: Path, key: bytes) -> Roster:
        """Read a roster CSV with the header `card,name` (UTF-8, chmod 600)."""
        text = private_file(path, "roster")
        rows = csv.DictReader(text.splitlines())
        if rows.fieldnames is None or not {"card", "name"} <= set(rows.fieldnames):
            raise StaffError(f"roster {path} needs a header line with the columns card,name")
        people = []
        for n, row in enumerate(rows, start=2):
            card, name = (row.get("card") or "").strip(), (row.get("name") or "").strip()
            if not CARD_PATTERN.match(card) or not name:
                raise StaffError(
                    f"roster {path} line {n}: needs a card number (4-32 letters or digits) and a name"
                )
            people.append(Person(card, name))
        return cls(key, people)

    def person(self, pseudonym: str) -> Person | None:
        """Who a pseudonym is, when on the roster."""
        return self._by_pseudonym.get(pseudonym)

    def pseudonym_of(self, card: str) -> str:
        """The pseudonym of a card number (on the roster or not), as the gateway computes it."""
        return pseudonymize(self._key, check_card(card))
