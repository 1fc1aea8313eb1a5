"""Losses built on the solvers: SPOT (``spot``), minibatch OT (``minibatch``), point-cloud
losses (``point_cloud``) and the adversarial WGAN/GAN losses (``adversarial``)."""

from ot_jax.losses import adversarial, minibatch, point_cloud, spot
from ot_jax.losses.point_cloud import chamfer_distance, exact_loss

__all__ = ["adversarial", "minibatch", "point_cloud", "spot", "chamfer_distance", "exact_loss"]
