"""Soft top-k and soft sort: forward and ``value_and_grad``, ot_jax beside OTT-JAX.

Run by ``make bench`` as ``python scripts/bench_soft_sort.py``. One process, both
libraries on the same problem: ``x ~ N(0, 1)`` of size ``n``, float32, squashed by
the sigmoid of the whitened values (OTT-JAX's default; ``normalize="sigmoid"`` in
ot_jax, so both compute the same operator), ``epsilon = 0.01`` (absolute), 5000
iterations at most, stopping tolerance 1e-3 on the L1 marginal error (ot_jax's
``tol``, OTT-JAX's ``threshold``). Rows:

- top-k mask, ``k = n / 10``: ``ot_jax.soft_topk`` against
  ``ott.tools.soft_sort.topk_mask`` (an ``n x 2`` problem);
- soft sort, ``m = n`` anchors: ``ot_jax.soft_sort`` against
  ``ott.tools.soft_sort.sort`` (an ``n x n`` problem);

each forward (``jax.jit`` of the operator) and ``value_and_grad`` of ``<w, out>``
for a fixed random ``w`` (both libraries differentiate implicitly: ot_jax's default
``grad_mode="implicit"``, OTT-JAX's default ``ImplicitDiff``; OTT-JAX's sort starts
from its ``SortingInitializer`` forward and from zero potentials under ``value_and_grad``,
since that initializer's while loop cannot be reverse-differentiated; ot_jax's top-k
starts from the bisection solution of the two-anchor problem and its sort from zero
potentials). Every function is
compiled ahead of time (compile column), called once, then timed (median of
``--repeats``). ``error`` is the largest difference of each library's forward output
from ot_jax's solve of the same operator at ``tol = 1e-6`` (a check that the rows
compute the same thing, and what the stopping rule leaves). The markdown table
goes to stdout and to the ``soft_sort`` block of ``docs/benchmarks.md``. The whole
run takes about 1.5 minutes on 2 CPU cores; sort stops at n = 3,000 by default
because one OTT-JAX forward sort at n = 10,000 took 38 s there (``--sort-sizes
1000 10000`` runs it, some 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPORT, command_line, cpu_model, git_revision, median_time, write_section  # noqa: E402

import ot_jax  # noqa: E402

EPSILON = 0.01
TOL = 1e-3
MAX_ITERS = 5000


def reference(kind: str, n: int):
    """ot_jax's operator solved tightly (tol 1e-6): what the forward outputs are compared to."""
    kw = dict(epsilon=EPSILON, tol=1e-6, max_iters=20000, normalize="sigmoid")
    if kind == "top-k":
        return lambda x: ot_jax.soft_topk(x, n // 10, **kw)
    return lambda x: ot_jax.soft_sort(x, **kw)


def _first_line(err: Exception) -> str:
    """The line of an error message that says what went wrong (lineax's, when it is buried in a callback)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "linear solver returned" in line:
            return "its linear solve (lineax) returned NaN/inf"
    return (lines[0] if lines else type(err).__name__)[:90]


def operators(kind: str, n: int, grad: bool):
    """``(ours, theirs)``: functions ``x [n] -> [n]`` computing the same soft operator."""
    from ott.initializers.linear import initializers
    from ott.tools import soft_sort as ott_soft_sort

    ott_kw = dict(epsilon=EPSILON, threshold=TOL, max_iterations=MAX_ITERS)
    if grad and kind == "sort":
        # OTT-JAX's default start for sorting (SortingInitializer, a while loop) cannot be
        # reverse-differentiated: its gradients start from zero potentials.
        ott_kw["initializer"] = initializers.DefaultInitializer()
    ours_kw = dict(epsilon=EPSILON, tol=TOL, max_iters=MAX_ITERS, normalize="sigmoid")
    if kind == "top-k":
        k = n // 10
        return (lambda x: ot_jax.soft_topk(x, k, **ours_kw)), (lambda x: ott_soft_sort.topk_mask(x, k=k, **ott_kw))
    return (lambda x: ot_jax.soft_sort(x, **ours_kw)), (lambda x: ott_soft_sort.sort(x, **ott_kw))


def timed(fn, x, repeats: int):
    """``(median seconds, compile seconds, output)`` of ``jax.jit(fn)`` at ``x``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(x).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(x))
    return median_time(lambda: compiled(x), repeats), compile_s, out


def temp_bytes(fn, x) -> int:
    """XLA's scratch memory (bytes) of ``jax.jit(fn)`` at ``x``: what the program allocates beyond its
    arguments and outputs (``compiled.memory_analysis()``; no run)."""
    return int(jax.jit(fn).lower(x).compile().memory_analysis().temp_size_in_bytes)


def memory_table(sizes) -> str:
    """Compiled scratch memory of top-k (k = n/10), forward and value_and_grad, both libraries."""
    import ott

    rows = ["## Soft top-k: compiled scratch memory (`scripts/bench_soft_sort.py --memory`)", "",
            f"Command: `{command_line()}`; revision {git_revision()}; jax {jax.__version__} "
            f"({jax.default_backend()}), ott-jax {ott.__version__}; float32, k = n/10, settings as above. Scratch = "
            "XLA's temporary buffers of the compiled program (`memory_analysis().temp_size_in_bytes`), beyond the "
            "n-vector input and output; bytes per score in brackets.", "",
            "| n | call | ot_jax scratch | OTT-JAX scratch |", "|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for n in sizes:
        x = jnp.asarray(rng.normal(size=n), jnp.float32)
        w = jnp.asarray(rng.normal(size=n), jnp.float32)
        for call in ("forward", "value_and_grad"):
            ours, theirs = operators("top-k", n, grad=call == "value_and_grad")
            cells = []
            for op in (ours, theirs):
                fn = op if call == "forward" else jax.value_and_grad(lambda x, op=op: jnp.vdot(w, op(x)))
                b = temp_bytes(fn, x)
                cells.append(f"{b / 2**20:.1f} MiB ({b / n:.0f} B)")
            rows.append(f"| {n:,} | {call} | {cells[0]} | {cells[1]} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="only the compiled-memory table of top-k")
    parser.add_argument("--topk-sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--sort-sizes", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=REPORT)
    args = parser.parse_args()
    if args.memory:
        text = memory_table(args.topk_sizes)
        write_section("soft_sort_memory", text, args.out)
        print(text)
        return

    import ott

    lines = [
        "## Soft top-k and soft sort, vs OTT-JAX (`scripts/bench_soft_sort.py`)",
        "",
        f"Command: `{command_line()}`; revision {git_revision()}; {cpu_model()}, {os.cpu_count()} cores, "
        f"{platform.system()}; jax {jax.__version__} ({jax.default_backend()}), ott-jax {ott.__version__}.",
        f"x ~ N(0, 1), float32, sigmoid of the whitened values (both libraries), epsilon = {EPSILON} (absolute), "
        f"tol = {TOL} (L1 marginal error), at most {MAX_ITERS} iterations; top-k with k = n/10 (n x 2 problem), "
        "sort with m = n anchors (n x n). `value_and_grad` of <w, out> for a fixed random w, implicit "
        "differentiation in both (OTT-JAX's sort: SortingInitializer forward, zero potentials under "
        "value_and_grad, where that initializer cannot be differentiated). "
        f"Median of {args.repeats} calls after one warm-up; compile time apart; "
        "error = largest difference of each forward output from ot_jax's solve at tol = 1e-6 (same operator).",
        "",
        "| operator | n | call | ot_jax (s) | OTT-JAX (s) | ratio ot_jax / OTT-JAX | compile ot_jax / OTT-JAX (s) "
        "| error ot_jax / OTT-JAX |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    for kind, sizes in (("top-k", args.topk_sizes), ("sort", args.sort_sizes)):
        for n in sizes:
            x = jnp.asarray(rng.normal(size=n), jnp.float32)
            w = jnp.asarray(rng.normal(size=n), jnp.float32)
            results = {}
            for call in ("forward", "value_and_grad"):
                ours, theirs = operators(kind, n, grad=call == "value_and_grad")
                for name, op in (("ot_jax", ours), ("OTT-JAX", theirs)):
                    fn = op if call == "forward" else jax.value_and_grad(lambda x, op=op: jnp.vdot(w, op(x)))
                    try:
                        results[call, name] = timed(fn, x, args.repeats)
                    except Exception as err:  # a library that fails is reported, not fatal  # noqa: BLE001
                        message = _first_line(err)
                        results[call, name] = None, None, message
                        print(f"{kind} n={n} {call} {name}: failed: {message}", file=sys.stderr, flush=True)
                        continue
                    print(f"{kind} n={n} {call} {name}: {results[call, name][0]:.4f} s "
                          f"(compile {results[call, name][1]:.1f} s)", file=sys.stderr, flush=True)
                (t_ours, c_ours, out_ours), (t_ott, c_ott, out_ott) = results[call, "ot_jax"], results[call, "OTT-JAX"]
                cells = []
                for t, out in ((t_ours, out_ours), (t_ott, out_ott)):
                    cells.append(f"{t:.4f}" if t is not None else f"failed: {out}")
                ratio = f"{t_ours / t_ott:.2f}" if t_ours is not None and t_ott is not None else ""
                compile_s = " / ".join(f"{c:.1f}" if c is not None else "-" for c in (c_ours, c_ott))
                diff = ""
                if call == "forward":
                    ref = jax.block_until_ready(jax.jit(reference(kind, n))(x))
                    diff = " / ".join(f"{float(jnp.max(jnp.abs(out - ref))):.1e}" if t is not None else "-"
                                      for t, out in ((t_ours, out_ours), (t_ott, out_ott)))
                lines.append(f"| {kind} | {n:,} | {call} | {cells[0]} | {cells[1]} | {ratio} | {compile_s} | {diff} |")
            write_section("soft_sort", "\n".join(lines), args.out)  # after every size: a long run keeps its rows
    print("\n".join(lines))


if __name__ == "__main__":
    main()
