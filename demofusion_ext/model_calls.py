"""Counts the model calls of a phase: the "N UNet calls, M rows" of each phase report, and the benchmarks' cost."""
from __future__ import annotations


class CallCounter:
    """Wraps a prediction callable (`fn`, which a host may set later) and counts the calls that pass through it and
    their rows (batch elements: views times images times cond/uncond)."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.rows = 0

    def __call__(self, x, *args, **kwargs):
        self.calls += 1
        self.rows += x.shape[0]
        return self.fn(x, *args, **kwargs)
