"""Continuous normalising flow benchmark: training-step time of a FlowGenerator by trace, adjoint and solver.

Run: ``python scripts/bench_flows.py [--dims 2 8 32] [--repeats 20] [--batch 500] [--gain 2] [--max-seconds 20]
[--quick] [--no-write]``.

Model: :class:`ot_jax.nn.FlowGenerator` with one marginal of size d (its
:class:`~ot_jax.nn.VectorField`: hidden ``[64, 64, 64]``, ``tanh``, time appended to
every layer, ``zero_init=False``), float32. "Train-like" parameters: the module's
initialiser, then every kernel multiplied by ``--gain`` and every bias drawn from
``N(0, (0.1 x gain)^2)`` (at the plain initialiser the field is so gentle that
adaptive tsit5 needs 3-4 steps whatever the tolerance; with gain 2 its RMS at t = 0
is about 3.4 on N(0, I) points at d = 2, the order of a trained field).

Timed: one training step = value and gradient, w.r.t. the VectorField parameters, of

    loss = mean(log_density) + mean(|z(1)|^2),  (z(1), log_density) = generator.flow(z0, key)

(:func:`ot_jax.nn.cnf.push_forward` with the log-density), ``z0 ~ N(0, I)`` of
``[batch, d]``, jit-compiled ahead of time (``lower().compile()``, reported in its own
column) and run once as a warm-up. Each timed call gets a fresh batch and key
(pre-drawn); a case's time is the median of ``--repeats`` calls
(``block_until_ready``), fewer when its calls would take more than about
``--max-seconds`` in all, the cases timed in turn (round robin) so that load from
other processes hits them alike. Sections: the trace estimator (exact vs Hutchinson)
at several d; the adjoint (recursive, backsolve, direct) at d = 2; the solver at
d = 2 (constant-step midpoint / tsit5, adaptive tsit5, with its accepted and
rejected steps read from diffrax's solve statistics); forward sampling without
(``generator(z)``) and with (``generator.flow``) the log-density. The block ``flows``
of ``docs/benchmarks.md`` is rewritten (``scripts/_timing.write_section``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import diffrax
import equinox
import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import ot_jax
from ot_jax.nn import FlowGenerator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import command_line, cpu_model, git_revision, median_time, write_section  # noqa: E402

HIDDEN = (64, 64, 64)
ACTIVATION = "tanh"
REFERENCE = dict(solver="tsit5", step_size="constant", n_steps=4)  # the solver of the trace / adjoint sections
REFERENCE_TEXT = "tsit5, 4 constant steps"

# (section, label, d or None (= 2), FlowSettings fields beyond REFERENCE, kind)
#   kind "grad": a training step; "sample": generator(z); "flow": generator.flow(z, key)
SOLVERS = [
    ("midpoint, 8 constant steps", dict(solver="midpoint", step_size="constant", n_steps=8)),
    ("tsit5, 4 constant steps", dict(REFERENCE)),
    ("tsit5, adaptive, rtol = atol = 1e-3", dict(solver="tsit5", step_size="adaptive", rtol=1e-3, atol=1e-3)),
    ("tsit5, adaptive, rtol = atol = 1e-5", dict(solver="tsit5", step_size="adaptive", rtol=1e-5, atol=1e-5)),
]
ADJOINTS = [
    ("recursive", dict(adjoint="recursive")),
    ("backsolve", dict(adjoint="backsolve")),
    ("direct", dict(adjoint="direct")),
    ("direct, max_steps = 4", dict(adjoint="direct", max_steps=4)),
]


def _settings(extra: dict) -> dict:
    out = dict(REFERENCE, adjoint="recursive", trace="exact")
    out.update(extra)
    return out


def _key(d: int, settings: dict, kind: str):
    return (d, kind, tuple(sorted(settings.items())))


def train_like(state, gain: float, seed: int):
    """The initialiser's parameters with kernels times ``gain`` and biases ``N(0, (0.1 gain)^2)``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    out = []
    for (path, leaf), key in zip(leaves, keys):
        if "bias" in jax.tree_util.keystr(path):
            out.append((0.1 * gain * jax.random.normal(key, leaf.shape, leaf.dtype)).astype(leaf.dtype))
        else:
            out.append((gain * leaf).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def _with_stats(run):
    """``run()`` with ``diffrax.diffeqsolve`` wrapped for the duration (of the trace), returning
    ``(run(), stats of the last solve)``: :class:`ot_jax.nn.cnf.FlowResult` keeps only ``num_steps``
    (diffrax's count of all steps, rejected ones included), not the accepted / rejected split."""
    stats = {}
    solve = diffrax.diffeqsolve

    def spy(*args, **kwargs):
        solution = solve(*args, **kwargs)
        stats.update(solution.stats)
        return solution

    diffrax.diffeqsolve = spy
    try:
        out = run()
    finally:
        diffrax.diffeqsolve = solve
    return out, stats


class Case:
    """One compiled function (a training step, or forward sampling) and its timings."""

    def __init__(self, d: int, settings: dict, kind: str, batches):
        self.d, self.settings, self.kind = d, settings, kind
        self.batches = batches
        self.next = 0
        self.times: list[float] = []
        self.repeats = 0
        self.error = None
        self.compile_seconds = None
        self.params = None
        self.steps = []  # per call: (all steps, accepted, rejected) of the forward solve
        self.losses = []

    def build(self, gain: float, seed: int) -> None:
        """Initialise the generator, its train-like parameters, and compile the timed function."""
        d, settings, kind, batches = self.d, self.settings, self.kind, self.batches
        generator = FlowGenerator([d], hidden=HIDDEN, activation=ACTIVATION, zero_init=False,
                                  rngs=nnx.Rngs(seed), **settings)
        graphdef, state = nnx.split(generator)
        state = train_like(state, gain, seed + 1)
        self.state = state
        self.params = int(sum(np.size(leaf) for leaf in jax.tree.leaves(state)))
        if jax.tree.leaves(state)[0].dtype != jnp.float32:
            raise RuntimeError("bench_flows times float32 parameters")

        if kind == "grad":
            def loss(state, z0, key):
                out, stats = _with_stats(lambda: nnx.merge(graphdef, state).flow(z0, key))
                value = jnp.mean(out.log_density) + jnp.mean(jnp.sum(out.z ** 2, axis=-1))
                return value, (out.num_steps, stats["num_accepted_steps"], stats["num_rejected_steps"], out.converged)

            fn = jax.value_and_grad(loss, has_aux=True)
        elif kind == "flow":
            def fn(state, z0, key):
                out = nnx.merge(graphdef, state).flow(z0, key)
                return out.z, out.log_density, out.converged
        else:
            def fn(state, z0, key):
                del key
                return nnx.merge(graphdef, state)(z0)

        z0, key = batches[0]
        start = time.perf_counter()
        self.compiled = jax.jit(fn).lower(state, z0, key).compile()
        self.compile_seconds = time.perf_counter() - start

    def call(self):
        z0, key = self.batches[self.next % len(self.batches)]
        self.next += 1
        out = self.compiled(self.state, z0, key)
        if self.kind == "grad":
            (value, (steps, accepted, rejected, ok)), grads = out
            self._last = (value, steps, accepted, rejected, ok, grads)
        return out

    def record(self) -> None:
        """Check and keep the solve statistics of the last training-step call."""
        if self.kind != "grad":
            return
        value, steps, accepted, rejected, ok, grads = self._last
        finite = bool(jnp.isfinite(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        if not (bool(ok) and finite):
            raise RuntimeError(f"solve failed or non-finite loss / gradient (ok={bool(ok)}, loss={float(value)})")
        self.steps.append((int(steps), int(accepted), int(rejected)))
        self.losses.append(float(value))

    def warm_up(self, repeats: int, max_seconds: float) -> None:
        """First call (untimed, checked), then one timed call to size the number of repeats."""
        jax.block_until_ready(self.call())
        self.record()
        seconds = median_time(self.call, 1)
        self.record()
        self.repeats = max(3, min(repeats, int(max_seconds / max(seconds, 1e-9))))

    def sample(self) -> None:
        if len(self.times) < self.repeats:
            self.times.append(median_time(self.call, 1))
            self.record()

    @property
    def ms(self) -> float:
        return 1e3 * float(np.median(self.times))


def _message(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200].replace("|", "/")


def _count(n) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_ms(case: Case | None) -> str:
    if case is None:
        return "-"
    if case.error:
        return case.error
    return f"{case.ms:.3g}" if case.times else "-"


def _fmt_compile(case: Case | None) -> str:
    return "-" if case is None or case.compile_seconds is None else f"{case.compile_seconds:.1f}"


def _spread(case: Case) -> str:
    if case.error or not case.times:
        return "-"
    return f"{1e3 * min(case.times):.3g} - {1e3 * max(case.times):.3g}"


def _ratio(a: Case | None, b: Case | None) -> str:
    if a is None or b is None or a.error or b.error or not a.times or not b.times:
        return "-"
    return f"{a.ms / b.ms:.3g}x"


def process_warm_up() -> None:
    """Compile and run a tiny flow training step, untimed: the process's first diffrax / XLA compile
    pays one-time costs that would otherwise land on the first case's compile time."""
    generator = FlowGenerator([1], hidden=[4], zero_init=False, rngs=nnx.Rngs(0), **REFERENCE)
    graphdef, state = nnx.split(generator)

    def loss(state, z0):
        return jnp.mean(nnx.merge(graphdef, state).flow(z0).log_density)

    jax.block_until_ready(jax.jit(jax.grad(loss))(state, jnp.zeros((2, 1), jnp.float32)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 32], help="d of the trace section")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (median; default 20)")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="fewer repeats (at least 3) for a case whose calls would take longer in all (default 20)")
    parser.add_argument("--batch", type=int, default=500, help="points per training step (default 500)")
    parser.add_argument("--gain", type=float, default=2.0,
                        help="kernel multiplier of the train-like parameters (default 2; biases N(0, (0.1 gain)^2))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: d = 2 only, 3 repeats; prints only (implies --no-write)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.repeats, args.max_seconds, args.no_write = [2], 3, 2.0, True
    if args.repeats < 1 or args.batch < 1 or min(args.dims) < 1:
        parser.error("--repeats, --batch and --dims must be >= 1")
    jax.config.update("jax_enable_x64", False)
    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.perf_counter()
    load_start = os.getloadavg()

    # the cases, deduplicated: the trace / adjoint / solver sections share the reference case at d = 2
    plan = []  # (section, label, d, settings, kind)
    for d in args.dims:
        for trace in ("exact", "hutchinson"):
            plan.append(("trace", trace, d, _settings(dict(trace=trace)), "grad"))
    for label, extra in ADJOINTS:
        plan.append(("adjoint", label, 2, _settings(extra), "grad"))
    for label, extra in SOLVERS:
        settings = _settings({})
        for name in ("solver", "step_size", "n_steps"):
            settings.pop(name)
        settings.update(extra)
        plan.append(("solver", label, 2, settings, "grad"))
    plan.append(("sampling", "generator(z): points only", 2, _settings({}), "sample"))
    plan.append(("sampling", "generator.flow(z, key): points and log-density", 2, _settings({}), "flow"))

    process_warm_up()
    batches = {}
    cases = {}
    n_batches = max(args.repeats, 1) + 2
    for section, label, d, settings, kind in plan:
        key = _key(d, settings, kind)
        if key in cases:
            continue
        if d not in batches:
            rng = jax.random.PRNGKey(1000 + d)
            keys = jax.random.split(rng, 2 * n_batches)
            batches[d] = [(jax.random.normal(keys[2 * i], (args.batch, d), jnp.float32), keys[2 * i + 1])
                          for i in range(n_batches)]
        case = cases[key] = Case(d, settings, kind, batches[d])
        try:
            case.build(args.gain, args.seed)
            case.warm_up(args.repeats, args.max_seconds)
            print(f"{section}: {label}, d = {d}: compiled in {case.compile_seconds:.1f} s; "
                  f"{case.repeats} repeats", flush=True)
        except Exception as err:  # report the failure in the table, go on with the other cases
            case.error = _message(err)
            print(f"{section}: {label}, d = {d}: FAILED {case.error}", flush=True)

    live = [c for c in cases.values() if not c.error]
    for _ in range(max((c.repeats for c in live), default=0)):  # round robin
        for case in live:
            try:
                case.sample()
            except Exception as err:
                case.error = _message(err)
                live = [c for c in live if c is not case]

    def get(d, settings, kind="grad"):
        return cases[_key(d, settings, kind)]

    params = {d: next((c.params for c in cases.values() if c.d == d and c.params), None) for d in args.dims}

    lines = [
        "## Continuous normalising flows: training step by trace, adjoint and solver (`scripts/bench_flows.py`)",
        "",
        f"- command: `{command_line()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- git: {git_revision()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (`os.cpu_count()`); load average at start: "
        f"{', '.join(f'{x:.2f}' for x in load_start)}; at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- JAX backend: {jax.default_backend()}; versions: python {platform.python_version()}, jax {jax.__version__}, "
        f"diffrax {diffrax.__version__}, equinox {equinox.__version__}, flax {flax.__version__}, "
        f"ot_jax {ot_jax.__version__}, numpy {np.__version__}; dtype float32 (`jax_enable_x64` off)",
        f"- model: `FlowGenerator([d], hidden={list(HIDDEN)}, activation='{ACTIVATION}', zero_init=False)`; "
        f"train-like parameters: the initialiser's, kernels x {args.gain:g}, biases N(0, {0.1 * args.gain:g}^2); "
        f"base draws z0 ~ N(0, I), batch {args.batch}.",
        f"- timed: one **training step** = value and gradient w.r.t. the VectorField parameters of "
        "`mean(log_density) + mean(|z(1)|^2)` with `(z(1), log_density) = generator.flow(z0, key)` (push-forward "
        "with the log-density), jit-compiled ahead of time (`lower().compile()`, column `compile`, excluded from the "
        "step time; the process first compiles a tiny flow, untimed, so that one-time costs do not land on the "
        f"first case) and run once as a warm-up; then the median of up to {args.repeats} calls (`block_until_ready`; "
        f"fewer, at least 3, when a case's calls would last more than about {args.max_seconds:g} s in all: column "
        "`repeats`), each call on a fresh batch and key, the cases timed in turn (round robin) so that load from "
        "other processes hits them alike. Unless a column says otherwise: "
        f"{REFERENCE_TEXT}, recursive adjoint, exact trace, max_steps = 4096 (the `FlowSettings` default).",
        "- no rival column: neither POT nor OTT-JAX has a continuous normalising flow (or any neural-ODE density).",
        "",
        f"### 1. Trace of the Jacobian: exact (d JVPs) vs Hutchinson (1 JVP, Rademacher probe) ({REFERENCE_TEXT})",
        "",
        "| d | params | exact: ms / step | exact: compile (s) | hutchinson: ms / step | hutchinson: compile (s) "
        "| hutchinson / exact | repeats (exact / hutchinson) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in args.dims:
        exact = get(d, _settings(dict(trace="exact")))
        hutch = get(d, _settings(dict(trace="hutchinson")))
        lines.append(f"| {d} | {_count(params[d])} | {_fmt_ms(exact)} | {_fmt_compile(exact)} | {_fmt_ms(hutch)} "
                     f"| {_fmt_compile(hutch)} | {_ratio(hutch, exact)} | {exact.repeats} / {hutch.repeats} |")

    recursive = get(2, _settings(dict(adjoint="recursive")))
    lines += [
        "",
        f"### 2. Adjoint (d = 2, exact trace, {REFERENCE_TEXT})",
        "",
        "| adjoint | ms / step | min - max ms | compile (s) | vs recursive | repeats |",
        "|---|---|---|---|---|---|",
    ]
    for label, extra in ADJOINTS:
        case = get(2, _settings(extra))
        lines.append(f"| {label} | {_fmt_ms(case)} | {_spread(case)} | {_fmt_compile(case)} "
                     f"| {_ratio(case, recursive)} | {case.repeats} |")

    lines += [
        "",
        "### 3. Solver (d = 2, exact trace, recursive adjoint)",
        "",
        "| solver | ms / step | min - max ms | compile (s) | forward solve steps: accepted / rejected (mean) "
        "| ms / step per accepted step | loss on batch 0 | repeats |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, extra in SOLVERS:
        settings = _settings({})
        for name in ("solver", "step_size", "n_steps"):
            settings.pop(name)
        settings.update(extra)
        case = get(2, settings)
        if case.error or not case.steps:
            lines.append(f"| {label} | {_fmt_ms(case)} | - | {_fmt_compile(case)} | - | - | - | {case.repeats} |")
            continue
        steps = np.asarray(case.steps, dtype=float)
        accepted, rejected = steps[:, 1].mean(), steps[:, 2].mean()
        lines.append(f"| {label} | {_fmt_ms(case)} | {_spread(case)} | {_fmt_compile(case)} "
                     f"| {accepted:.3g} / {rejected:.3g} | {case.ms / accepted:.3g} | {case.losses[0]:.4f} "
                     f"| {case.repeats} |")

    sample = get(2, _settings({}), "sample")
    flow = get(2, _settings({}), "flow")
    lines += [
        "",
        f"### 4. Forward sampling, no gradient (d = 2, {REFERENCE_TEXT}, exact trace)",
        "",
        "| call | ms | min - max ms | compile (s) | vs points only | repeats |",
        "|---|---|---|---|---|---|",
    ]
    for label, case in (("`generator(z)`: points only", sample),
                        ("`generator.flow(z, key)`: points and log-density", flow)):
        lines.append(f"| {label} | {_fmt_ms(case)} | {_spread(case)} | {_fmt_compile(case)} "
                     f"| {_ratio(case, sample)} | {case.repeats} |")
    lines += [
        "",
        "Steps: diffrax's solve statistics of the forward (push-forward) solve, averaged over the batches of the "
        "warm-up and timed calls; `FlowResult.num_steps` counts accepted and rejected steps together. Loss on "
        "batch 0: every solver row gets the same first batch, so the spread of this column is the solvers' error. The "
        "backsolve adjoint integrates its own adjoint system backwards; the direct adjoint's cost grows with "
        "`max_steps` (the row with `max_steps = 4`, the exact number of constant steps, shows by how much).",
        "",
        f"Wall time of this run: {time.perf_counter() - wall:.0f} s.",
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("flows", markdown)
        print("-> docs/benchmarks.md (block `flows`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
