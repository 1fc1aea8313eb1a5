"""ot_jax.data.tracking: objects on a spiral, detections without identities."""

import jax
import numpy as np
import pytest

from ot_jax.data.tracking import moving_objects, spiral


def test_detections_are_shuffled_noisy_positions_of_the_dynamics():
    tracks = moving_objects(jax.random.PRNGKey(0), 7, 5, angle=0.4, contraction=0.9, center=(0.5, -1.0),
                            process_noise=0.0, detection_noise=1e-3)
    pos, det, ident = (np.asarray(v) for v in tracks[:3])
    assert pos.shape == det.shape == (5, 7, 2) and ident.shape == (5, 7)
    for t in range(5):
        assert sorted(ident[t]) == list(range(7))
        assert np.max(np.abs(det[t] - pos[t][ident[t]])) < 5e-3
    dyn = np.asarray(tracks.dynamics)
    np.testing.assert_allclose(pos[1:], pos[:-1] @ dyn[:2] + dyn[2], atol=1e-6)
    # a rotation by 0.4 shrinking by 0.9 around the center, which it leaves in place
    np.testing.assert_allclose(np.asarray([0.5, -1.0]) @ dyn[:2] + dyn[2], [0.5, -1.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(dyn[:2]), 0.81, rtol=1e-5)
    np.testing.assert_allclose(np.arctan2(dyn[0, 1], dyn[0, 0]), 0.4, rtol=1e-5)
    again = moving_objects(jax.random.PRNGKey(0), 7, 5, angle=0.4, contraction=0.9, center=(0.5, -1.0),
                           process_noise=0.0, detection_noise=1e-3)
    np.testing.assert_array_equal(np.asarray(again.detections), det)
    assert np.asarray(spiral(0.4, 0.9)).shape == (3, 2)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n_frames"):
        moving_objects(jax.random.PRNGKey(0), 3, 1)
    with pytest.raises(ValueError, match="detection_noise"):
        moving_objects(jax.random.PRNGKey(0), 3, 3, detection_noise=-1.0)
