"""docs/operations.md's rule table is the code's (a rule changed without the page fails here)."""

from __future__ import annotations

from cloud.ops.rules import RULES
from tests.support.common import PROJECT


def test_the_rules_table_in_operations_md_is_rules() -> None:
    doc = (PROJECT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc.split("## The rules", 1)[1].split("\n## ", 1)[0]
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    documented = [tuple(r) for r in rows]
    expected = [
        (f"`{r.name}`", r.title, r.subject, r.severity, r.audience, r.opens, r.resolves)
        for r in RULES
    ]
    assert documented == expected


def test_readme_links_the_operations_page() -> None:
    assert "docs/operations.md" in (PROJECT / "README.md").read_text(encoding="utf-8")
