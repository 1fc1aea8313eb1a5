"""Losses built on the solvers: SPOT (``spot``), minibatch OT (``minibatch``), point-cloud
losses (``point_cloud``), the adversarial WGAN/GAN losses (``adversarial``) and soft kNN
classification and beam search through SOFT top-k (``knn``, ``beam``), regression without
correspondence (``robot``) and its tracking application (``tracking``), and domain adaptation with
SPOT (``daspot``)."""

from ot_jax.losses import adversarial, beam, daspot, knn, minibatch, point_cloud, robot, spot, tracking
from ot_jax.losses.point_cloud import chamfer_distance, exact_loss

__all__ = ["adversarial", "beam", "daspot", "knn", "minibatch", "point_cloud", "robot", "spot", "tracking", "chamfer_distance",
           "exact_loss"]
