"""ot_jax.losses.tracking: ROBOT's fit of the dynamics from detections without identities,
against the true dynamics, the AltMin tracker and finite differences."""

import jax
import numpy as np
import pytest

from ot_jax.data.tracking import moving_objects
from ot_jax.losses.tracking import fit_dynamics, tracking_loss
from ot_jax.tools import tracking


@pytest.mark.slow  # two fits to convergence (~10 s); the tracking loss and its gradient are checked fast in this file
def test_robot_and_alt_min_recover_the_dynamics_from_detections_alone():
    tracks = moving_objects(jax.random.PRNGKey(2), 12, 4, angle=0.6, process_noise=0.0, detection_noise=0.0)
    fitted, losses = fit_dynamics(tracks.detections, epsilons=(1.0, 1e-2, 1e-3), steps=150, learning_rate=2e-2)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(np.asarray(fitted), np.asarray(tracks.dynamics), atol=3e-4)  # measured 6e-5
    assert tracking.identity_switch_rate(tracking.link(fitted, tracks.detections), tracks.identity) == 0.0
    alt, links, iters = tracking.alt_min_dynamics(tracks.detections)
    assert iters >= 2 and tracking.identity_switch_rate(links, tracks.identity) == 0.0
    np.testing.assert_allclose(alt, np.asarray(tracks.dynamics), atol=1e-9)


def test_tracking_loss_is_least_at_the_true_dynamics_and_its_gradient_matches_finite_differences():
    tracks = moving_objects(jax.random.PRNGKey(3), 8, 3, angle=0.5, process_noise=0.0, detection_noise=0.0)
    true = np.asarray(tracks.dynamics)
    loss = lambda a: float(tracking_loss(a, tracks.detections, epsilon=1e-2, tol=1e-12, max_iters=20000))
    assert loss(true) < loss(true + 0.05) and loss(true) < loss(np.asarray(tracking.identity_dynamics(np.float64)))
    # the relative epsilon is held constant by the gradient: compare at a fixed absolute epsilon
    absolute = lambda a: tracking_loss(a, tracks.detections, epsilon=1e-3, relative_epsilon=False, tol=1e-12,
                                       max_iters=20000)
    at = true + 0.03 * np.asarray(jax.random.normal(jax.random.PRNGKey(4), true.shape))
    grad = np.asarray(jax.grad(absolute)(at))
    h, direction = 1e-5, np.asarray(jax.random.normal(jax.random.PRNGKey(5), true.shape))
    fd = (float(absolute(at + h * direction)) - float(absolute(at - h * direction))) / (2 * h)
    np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-5)
