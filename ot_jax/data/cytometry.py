"""Flow-cytometry calibration without correspondence: a simulation, and real event files.

The thesis runs ROBOT on real flow-cytometry data, which cannot be downloaded here. The task
it stands for: cells of a sample are split into wells (tubes); each well is read by two
instruments, A (``d`` fluorescence detectors, the features) and B (``p`` detectors, the
responses), and each instrument records the events of a well in its own order, so which
reading of B belongs to which reading of A is known only up to the well. Learning the
calibration ``B ≈ A beta + c`` is regression without correspondence within blocks
(:class:`ot_jax.data.unpaired.Unpaired` with ``d_paired = 0`` and ``match[i] // well_size ==
i // well_size``).

:func:`simulate_cytometry` generates such data from a physical model of the two instruments
(documented in its docstring: cell populations, spillover, detector gains, autofluorescence,
photon and electronic noise, a finite dynamic range). :func:`cytometry_from_events` builds the
same container from a real event table whose rows *are* paired (every channel of a cell in one
row, as an FCS or CSV export holds them) by shuffling them within wells, which is how
regression-without-correspondence studies use real cytometry data; :func:`cytometry_file` does
that from a file (:func:`ot_jax.data.fcs.load_events`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.data.fcs import load_events
from ot_jax.data.unpaired import Unpaired, partners, shuffled_source

__all__ = ["simulate_cytometry", "cytometry_from_events", "cytometry_file", "DYNAMIC_RANGE"]

DYNAMIC_RANGE = 2.0 ** 18  # an 18-bit digitiser: channel values in [0, 262143]


def _instrument(key, n_markers, n_detectors, spillover, reads_marker):
    """``M [n_markers, n_detectors]`` (spillover times gain) and autofluorescence ``[n_detectors]``
    of one instrument; detector ``t`` reads marker ``reads_marker[t]``."""
    ks, kg, ka = jax.random.split(key, 3)
    spill = spillover * jax.random.uniform(ks, (n_markers, n_detectors))
    primary = jax.nn.one_hot(jnp.asarray(reads_marker), n_markers).T  # [n_markers, n_detectors]
    gains = jax.random.uniform(kg, (n_detectors,), minval=0.5, maxval=2.0)  # PMT voltage settings
    auto = jax.random.uniform(ka, (n_detectors,), minval=50.0, maxval=200.0)  # counts
    return (primary + (1.0 - primary) * spill) * gains, auto


def _read(key, z, mix, auto, counts_per_photoelectron, electronic_noise, dynamic_range):
    """Readings ``[n, detectors]`` of abundances ``z: [n, markers]``: the expected signal
    ``z mix + auto`` (counts), photon (shot) noise of variance ``counts_per_photoelectron``
    times the signal, Gaussian electronic noise, clipped to ``[0, dynamic_range - 1]``."""
    k1, k2 = jax.random.split(key)
    signal = z @ mix + auto
    shot = jnp.sqrt(counts_per_photoelectron * signal) * jax.random.normal(k1, signal.shape)
    value = signal + shot + electronic_noise * jax.random.normal(k2, signal.shape)
    return jnp.clip(value, 0.0, dynamic_range - 1.0)


def simulate_cytometry(key: jax.Array, n: int, *, n_channels: int = 5, n_targets: int = 5, well_size: int = 500,
                       n_val: int | None = None, n_populations: int = 4, spillover: float = 0.15,
                       counts_per_photoelectron: float = 2.0, electronic_noise: float = 20.0,
                       dynamic_range: float = DYNAMIC_RANGE, brightness: Sequence[float] = (2.0, 5.0),
                       spread: float = 0.25, shuffled: float = 1.0, unit: float = 1e4) -> Unpaired:
    """Two instruments reading the same cells, correspondence lost within wells (generated).

    The model, per cell: a population ``k`` (weights ``Dirichlet(2)``), and ``n_channels`` marker
    abundances ``z_c = 10^(mu_kc + spread * N(0, 1))`` with population brightness
    ``mu_kc ~ U(brightness)`` (decades). Instrument A has ``n_channels`` detectors, detector
    ``c`` reading marker ``c``; instrument B has ``n_targets`` detectors (``n_targets <=
    n_channels``), detector ``t`` reading marker ``t`` through other filters. Each detector adds
    spillover from the other markers (``U(0, spillover)`` of their abundance), a gain
    (``U(0.5, 2)``, the PMT setting) and autofluorescence (``U(50, 200)`` counts); its reading is
    the expected signal plus photon noise (Poisson, in the Gaussian limit: variance
    ``counts_per_photoelectron`` times the signal) and electronic noise (``N(0,
    electronic_noise^2)`` counts), digitised in ``[0, dynamic_range - 1]`` (saturation: bright
    cells clip). Readings are reported in units of ``unit`` counts.

    Without noise and saturation B is exactly affine in A: ``y = x beta + c`` with ``beta =
    M_A^{-1} M_B`` and ``c = (auto_B - auto_A beta) / unit`` (``M`` = spillover times gains),
    which is ``Unpaired.beta`` (``[n_channels + 1, n_targets]``, intercept last). The events of
    A are then shuffled within consecutive wells of ``well_size`` cells (a share ``shuffled``
    of each well); the validation cells keep their correspondence (an index-sorted run).

    Args:
      key: PRNG key (the data set is a function of it).
      n: cells (a multiple of ``well_size``); n_val: validation cells (default ``n``, at most
        10,000 by default).
      n_channels: ``d``, detectors of A (= markers); n_targets: ``p``, detectors of B.
      well_size: cells per well (the block within which the order is lost).
      n_populations, brightness, spread: the cell populations (decades of abundance).
      spillover, counts_per_photoelectron, electronic_noise, dynamic_range: the instruments.
      shuffled: share of each well whose order is lost, in ``[0, 1]``.
      unit: counts per reported unit (> 0).

    Returns:
      :class:`ot_jax.data.unpaired.Unpaired` with ``x_paired: [n, 0]``, ``x_unpaired: [n, d]``
      (instrument A, shuffled within wells), ``y: [n, p]`` (instrument B), ``match``, the
      validation cells ``x_val: [n_val, d]``, ``y_val: [n_val, p]`` and ``beta``.

    Examples:
        >>> import jax
        >>> data = simulate_cytometry(jax.random.PRNGKey(0), 1000, well_size=250)
        >>> data.x_unpaired.shape, data.y.shape, data.beta.shape
        ((1000, 5), (1000, 5), (6, 5))
    """
    if n_channels < 1 or not 1 <= n_targets <= n_channels:
        raise ValueError(f"simulate_cytometry: need n_channels >= 1 and 1 <= n_targets <= n_channels, "
                         f"got n_channels={n_channels}, n_targets={n_targets}")
    if well_size < 2 or n % well_size:
        raise ValueError(f"simulate_cytometry: well_size must be >= 2 and divide n = {n}, got {well_size}")
    if not 0.0 <= shuffled <= 1.0:
        raise ValueError(f"simulate_cytometry: shuffled must be in [0, 1], got {shuffled}")
    for name, value in (("spillover", spillover), ("counts_per_photoelectron", counts_per_photoelectron),
                        ("electronic_noise", electronic_noise)):
        if not value >= 0:
            raise ValueError(f"simulate_cytometry: {name} must be >= 0, got {value}")
    if not (dynamic_range > 0 and unit > 0 and spread >= 0 and n_populations >= 1):
        raise ValueError(f"simulate_cytometry: need dynamic_range > 0, unit > 0, spread >= 0, n_populations >= 1, "
                         f"got {dynamic_range}, {unit}, {spread}, {n_populations}")
    n_val = min(n, 10_000) if n_val is None else int(n_val)
    kw, km, kpop, kz, ka, kb, kra, krb, ks, kp = jax.random.split(key, 10)
    weights = jax.random.dirichlet(kw, 2.0 * jnp.ones(n_populations))
    mu = jax.random.uniform(km, (n_populations, n_channels), minval=brightness[0], maxval=brightness[1])
    total = n + n_val
    pop = jax.random.choice(kpop, n_populations, (total,), p=weights)
    z = 10.0 ** (mu[pop] + spread * jax.random.normal(kz, (total, n_channels)))
    mix_a, auto_a = _instrument(ka, n_channels, n_channels, spillover, np.arange(n_channels))
    mix_b, auto_b = _instrument(kb, n_channels, n_targets, spillover, np.arange(n_targets))
    noise = (counts_per_photoelectron, electronic_noise, dynamic_range)
    x = _read(kra, z, mix_a, auto_a, *noise) / unit
    y = _read(krb, z, mix_b, auto_b, *noise) / unit
    beta = jnp.linalg.solve(mix_a, mix_b)
    beta = jnp.concatenate([beta, ((auto_b - auto_a @ beta) / unit)[None]])
    source = shuffled_source(ks, kp, n, shuffled=shuffled, block_size=well_size)
    match = partners(source)
    return Unpaired(jnp.zeros((n, 0), x.dtype), x[:n][source], y[:n], match, x[n:], y[n:], beta)


def cytometry_from_events(key: jax.Array, events, names: Sequence[str], *, inputs: Sequence[str],
                          targets: Sequence[str], well_size: int = 500, n_val: int = 1000, shuffled: float = 1.0,
                          unit: float = 1.0, max_events: int | None = None) -> Unpaired:
    """Regression without correspondence from a real, paired event table.

    The rows of ``events`` are cells with every channel of the cell (an FCS or CSV export).
    The events are put in a random order (``key``); the first ``n_val`` are the validation
    cells (paired); of the rest, the largest multiple of ``well_size`` (at most ``max_events``)
    is kept and the ``inputs`` channels are shuffled within consecutive wells (a share
    ``shuffled`` of each), the ``targets`` channels stay in place.

    Args:
      key: PRNG key.
      events: ``[n_events, n_channels]``; names: their channel names.
      inputs, targets: channel names of the features and of the responses (disjoint).
      well_size, n_val, shuffled: as in :func:`simulate_cytometry`.
      unit: values are divided by it (> 0).
      max_events: cap on the training events (None: all).

    Returns:
      :class:`ot_jax.data.unpaired.Unpaired` (``beta: [0, p]``: the truth is unknown).
    """
    names = [str(nm) for nm in names]
    events = np.asarray(events, np.float64)
    if events.ndim != 2 or events.shape[1] != len(names):
        raise ValueError(f"cytometry_from_events: events must be [n_events, {len(names)}] (one column per name), "
                         f"got {events.shape}")
    missing = [c for c in (*inputs, *targets) if c not in names]
    if missing:
        raise ValueError(f"cytometry_from_events: channels {missing} are not in the table (channels: {names})")
    if not inputs or not targets or set(inputs) & set(targets):
        raise ValueError(f"cytometry_from_events: inputs and targets must be non-empty and disjoint, "
                         f"got inputs={list(inputs)}, targets={list(targets)}")
    if not np.all(np.isfinite(events)):
        raise ValueError("cytometry_from_events: events contain NaN or inf")
    if not unit > 0 or well_size < 2 or n_val < 1 or not 0.0 <= shuffled <= 1.0:
        raise ValueError(f"cytometry_from_events: need unit > 0, well_size >= 2, n_val >= 1, shuffled in [0, 1], "
                         f"got {unit}, {well_size}, {n_val}, {shuffled}")
    n = (events.shape[0] - n_val) // well_size * well_size
    if max_events is not None:
        n = min(n, int(max_events) // well_size * well_size)
    if n < well_size:
        raise ValueError(f"cytometry_from_events: {events.shape[0]} events leave no full well of {well_size} "
                         f"after {n_val} validation events")
    korder, ks, kp = jax.random.split(key, 3)
    order = np.asarray(jax.random.permutation(korder, events.shape[0]))
    table = jnp.asarray(events[order] / unit)
    x = table[:, [names.index(c) for c in inputs]]
    y = table[:, [names.index(c) for c in targets]]
    x_val, y_val, x, y = x[:n_val], y[:n_val], x[n_val:n_val + n], y[n_val:n_val + n]
    source = shuffled_source(ks, kp, n, shuffled=shuffled, block_size=well_size)
    match = partners(source)
    return Unpaired(jnp.zeros((n, 0), x.dtype), x[source], y, match, x_val, y_val, jnp.zeros((0, y.shape[1]), x.dtype))


def cytometry_file(key: jax.Array, *, path: str, inputs: Sequence[str], targets: Sequence[str],
                   well_size: int = 500, n_val: int = 1000, shuffled: float = 1.0, unit: float = 1.0,
                   max_events: int | None = None) -> Unpaired:
    """:func:`cytometry_from_events` (same arguments) on the events of an ``.fcs`` or ``.csv``
    file ``path`` (:func:`ot_jax.data.fcs.load_events`)."""
    names, events = load_events(path)
    return cytometry_from_events(key, events, names, inputs=list(inputs), targets=list(targets), well_size=well_size,
                                 n_val=n_val, shuffled=shuffled, unit=unit, max_events=max_events)
