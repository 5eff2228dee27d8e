"""Benchmarks and the load test: the harness that measures the product against its goals.

`report.py` holds the one result type (`Figure`, `Goal`, `Report`) every `gumei bench …` command
and `gumei loadtest` print. The harness may import every product package and `devstack` (it starts
a `LocalStack` of its own); no product package imports `bench`.
"""
