"""Timing helper shared by the small benchmark scripts (run from ``scripts/``)."""

from __future__ import annotations

import time

import jax
import numpy as np


def median_time(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, waiting for JAX results."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))
