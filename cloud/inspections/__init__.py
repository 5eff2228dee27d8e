"""On-site inspections of sorting (五有 checks) and the sorting-effectiveness rate they give (docs/inspections.md)."""
