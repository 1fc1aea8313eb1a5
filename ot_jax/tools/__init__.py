"""Applications built on the solvers: colour transfer (``color``) and Gaussian closed forms
(``gaussian``)."""

from ot_jax.tools import color, gaussian
from ot_jax.tools.color import ColorTransferResult, color_transfer
from ot_jax.tools.gaussian import gaussian_entropic_plan, gaussian_w2

__all__ = ["color", "gaussian", "ColorTransferResult", "color_transfer", "gaussian_entropic_plan", "gaussian_w2"]
