"""Flow-cytometry calibration data (ot_jax.data.cytometry): the simulation's calibration is the
exact noiseless relation, the order is lost only within wells, saturation, real events from a
file, and the errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ot_jax.data.cytometry import DYNAMIC_RANGE, cytometry_file, cytometry_from_events, simulate_cytometry
from ot_jax.data.fcs import write_events_csv, write_fcs
from ot_jax.tools import regression


def test_noiseless_readings_are_exactly_affine_and_shuffled_within_wells():
    data = simulate_cytometry(jax.random.PRNGKey(0), 600, well_size=100, n_targets=2, n_val=50,
                              counts_per_photoelectron=0.0, electronic_noise=0.0, dynamic_range=1e12)
    x, y, match = np.asarray(data.x_unpaired), np.asarray(data.y), np.asarray(data.match)
    assert x.shape == (600, 5) and y.shape == (600, 2) and data.x_paired.shape == (600, 0)
    assert data.beta.shape == (6, 2)
    np.testing.assert_allclose(regression.predict(data.beta, x[match]), y, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(regression.predict(data.beta, data.x_val), data.y_val, rtol=1e-9, atol=1e-12)
    assert np.array_equal(np.sort(match), np.arange(600))  # a permutation
    assert np.all(match // 100 == np.arange(600) // 100)  # that stays within wells
    assert np.mean(match == np.arange(600)) < 0.05  # and loses (almost) every correspondence


def test_noise_saturation_and_partial_shuffle():
    data = simulate_cytometry(jax.random.PRNGKey(1), 2000, well_size=500, n_val=2000, shuffled=0.5)
    match = np.asarray(data.match)
    assert 0.45 < np.mean(match == np.arange(2000)) < 0.55  # half of each well kept its order
    x = np.asarray(data.x_unpaired)
    top = (DYNAMIC_RANGE - 1.0) / 1e4
    assert x.min() >= 0.0 and x.max() <= top + 1e-12
    # with the true matching, least squares is as good as the true calibration (noise floor > 0)
    beta = regression.least_squares(data.x_paired, data.x_unpaired, data.y, match)
    def err(b):
        r = regression.predict(b, data.x_val) - np.asarray(data.y_val)
        return np.sum(r ** 2) / np.sum((np.asarray(data.y_val) - np.asarray(data.y_val).mean(0)) ** 2)
    assert 1e-5 < err(beta) < 0.1 and err(beta) < 1.2 * err(np.asarray(data.beta))
    # a narrow dynamic range clips bright cells at its top
    clipped = simulate_cytometry(jax.random.PRNGKey(1), 1000, well_size=500, dynamic_range=2.0 ** 14)
    assert np.mean(np.asarray(clipped.x_unpaired) >= (2.0 ** 14 - 1) / 1e4 - 1e-12) > 0.05


def test_events_file_becomes_unpaired_data(tmp_path):
    rng = np.random.default_rng(0)
    names = ["FSC-A", "FITC-A", "PE-A", "APC-A"]
    events = rng.lognormal(5.0, 1.0, size=(1350, 4))
    write_fcs(tmp_path / "cells.fcs", events, names)
    write_events_csv(tmp_path / "cells.csv", events, names)
    for path in ("cells.fcs", "cells.csv"):
        data = cytometry_file(jax.random.PRNGKey(3), path=str(tmp_path / path), inputs=["FITC-A", "PE-A"],
                              targets=["APC-A"], well_size=100, n_val=300, unit=10.0)
        assert data.x_unpaired.shape == (1000, 2) and data.y.shape == (1000, 1) and data.x_val.shape == (300, 2)
        match = np.asarray(data.match)
        assert np.all(match // 100 == np.arange(1000) // 100)
        # every response sits beside its own cell's inputs once the hidden matching is applied
        cells = np.concatenate([np.asarray(data.x_unpaired)[match], np.asarray(data.y)], 1) * 10.0
        table = events[:, 1:].astype(np.float32).astype(np.float64) if path.endswith("fcs") else events[:, 1:]
        rows = {tuple(np.round(r, 3)) for r in table}
        assert all(tuple(np.round(c, 3)) in rows for c in cells[:50])
        assert data.beta.shape == (0, 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(inputs=["FITC-A", "nope"], targets=["PE-A"]), "nope"),
    (dict(inputs=["FITC-A"], targets=["FITC-A"]), "disjoint"),
    (dict(inputs=["FITC-A"], targets=["PE-A"], well_size=1000), "no full well"),
])
def test_bad_event_tables_raise(kwargs, match):
    events = np.ones((500, 2))
    with pytest.raises(ValueError, match=match):
        cytometry_from_events(jax.random.PRNGKey(0), events, ["FITC-A", "PE-A"], **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        cytometry_from_events(jax.random.PRNGKey(0), np.full((500, 2), np.nan), ["FITC-A", "PE-A"],
                              inputs=["FITC-A"], targets=["PE-A"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=1000, well_size=300), "well_size"),
    (dict(n=1000, n_targets=6), "n_targets"),
    (dict(n=1000, shuffled=1.5), "shuffled"),
    (dict(n=1000, electronic_noise=-1.0), "electronic_noise"),
])
def test_bad_simulation_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_cytometry(jax.random.PRNGKey(0), **kwargs)
