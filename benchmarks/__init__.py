"""Benchmarks: what the plugin costs Poetry, and what it saves over the manual ritual.

Run ``nox -s bench`` (or ``python -m benchmarks.bench`` from the repository root in
an environment that has Poetry); see ``benchmarks/RESULTS.md``.
"""
