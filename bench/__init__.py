"""Benchmark of the gateway against a *floor*: the same upstream calls with no GraphQL.

Run `python -m bench.run --help`. Nothing here is imported by the gateway or by the tests.
"""
