"""ot_jax.tools.tracking: the links a model implies, their identity switches and errors."""

import jax
import numpy as np

from ot_jax.data.tracking import moving_objects
from ot_jax.tools import tracking


def test_switch_rate_counts_links_between_different_objects():
    identity = np.array([[0, 1, 2], [2, 0, 1]])
    right = np.array([[1, 2, 0]])  # detection i of frame 0 -> the detection of the same object in frame 1
    assert tracking.identity_switch_rate(right, identity) == 0.0
    assert np.isclose(tracking.identity_switch_rate(np.array([[0, 1, 2]]), identity), 1.0)
    assert np.isclose(tracking.identity_switch_rate(np.array([[1, 0, 2]]), identity), 2 / 3)


def test_true_dynamics_link_without_switches_where_nearest_neighbours_fail():
    tracks = moving_objects(jax.random.PRNGKey(1), 30, 4, angle=1.0, process_noise=0.0, detection_noise=0.0)
    no_motion = tracking.identity_dynamics(np.float64)
    assert tracking.identity_switch_rate(tracking.link(tracks.dynamics, tracks.detections), tracks.identity) == 0.0
    assert tracking.identity_switch_rate(tracking.link(no_motion, tracks.detections), tracks.identity) > 0.5
    links = tracking.link(tracks.dynamics, tracks.detections)
    np.testing.assert_allclose(tracking.fit_on_links(tracks.detections, links), tracks.dynamics, atol=1e-9)
    assert tracking.one_step_error(tracks.dynamics, tracks.positions) < 1e-12
