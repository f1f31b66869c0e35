"""A counter of model evaluations for benchmarks: calls and batch elements (rows)."""
from __future__ import annotations


class EvalCounter:
    """Wraps a prediction callable and counts what passes through it."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.rows = 0

    def __call__(self, x, *args, **kwargs):
        self.calls += 1
        self.rows += x.shape[0]
        return self.fn(x, *args, **kwargs)
