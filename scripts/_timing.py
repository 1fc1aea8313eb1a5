"""Helpers shared by the benchmark scripts (run from ``scripts/``): timing and the report file."""

from __future__ import annotations

import os
import re
import time

import jax
import numpy as np

REPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")


def median_time(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, waiting for JAX results."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def write_section(name: str, markdown: str, path: str = REPORT) -> None:
    """Replace (or append) the block ``<!-- bench:name -->...<!-- /bench:name -->`` of ``path``.

    Each benchmark script owns one block of ``docs/benchmarks.md``, so rerunning
    one script leaves the other scripts' tables as they were.
    """
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text.rstrip() + "\n")
