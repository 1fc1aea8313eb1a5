"""Helpers shared by the benchmark scripts (run from ``scripts/``): timing, machine facts, the report file."""

from __future__ import annotations

import os
import platform
import re
import shlex
import subprocess
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(REPO, "docs", "benchmarks.md")


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


def markdown_table(headers, rows) -> str:
    """A Markdown table: ``headers`` (strings) and ``rows`` (lists of strings, one per line)."""
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                     + ["| " + " | ".join(row) + " |" for row in rows])


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """Short hash of HEAD, flagged when ``ot_jax/`` has uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ot_jax"], capture_output=True, text=True,
                               cwd=REPO).stdout.strip()
        return rev + (" (ot_jax/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    """The command that ran this script, with paths relative to the repository."""
    exe = sys.executable
    if exe.startswith(REPO + os.sep):
        exe = os.path.relpath(exe, REPO)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    return shlex.join([exe, script, *sys.argv[1:]])
