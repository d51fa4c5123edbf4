"""Benchmarks; they print figures and are smoke-run at tiny size by the tests."""
