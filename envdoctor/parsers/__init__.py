"""Parsers: pure ``str -> value`` functions for what tools print.

They never touch the system and never raise on garbage (truncated pastes,
mangled tables, error messages): they return None or a partial result. Each is
tested on real recorded outputs in ``tests/fixtures/corpus``.
"""
