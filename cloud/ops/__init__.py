"""Operations: rules as code, events with a lifecycle, their evaluator (docs/operations.md)."""
