"""Colour transfer by optimal transport: give a source image the colours of a target image.

Two ways of modelling an image's colours, both ending in a barycentric map
``T(s) = sum_j P_sj t_j / sum_j P_sj`` of a transport plan ``P``:

- ``space="channels"`` (the thesis, section 2.4.4 and figure 2.7): each colour
  channel on its own. The channel's values are binned into ``n_bins = 256``
  levels ``c_k = k / (n_bins - 1)`` (exactly the 8-bit levels), the
  ``n_bins x n_bins`` plan between the source and target histograms with cost
  ``(c_i - c_j)^2`` is solved, and every pixel at level ``i`` gets
  ``T_i = sum_j P_ij c_j / sum_j P_ij``. Three small problems whatever the
  image size. In 1-D the exact plan is the monotone (quantile) coupling
  (Pitié et al. 2007; Rabin et al. 2011), so ``solver="lp"`` (the exact LP, the default here),
  ``"ipot"`` (converges to the LP plan) and ``"quantile"`` (the north-west corner
  rule on the cumulative histograms, no solver) give the same map, while
  ``"sinkhorn"`` blurs the plan by ``epsilon`` and washes the colours toward
  each level's mean: the thesis' observation.
- ``space="rgb"``: the joint 3-D colour distribution (Ferradans et al. 2014).
  ``n_palette`` pixels are drawn from each image as palettes, the plan between
  the palettes (squared Euclidean cost in RGB) gives each source palette colour
  ``s_k`` a target colour ``T_k``, and every pixel ``x`` is moved by the
  displacement of the palette: ``x + (T_k - s_k)`` for its nearest palette
  colour (``extension="nearest"``, POT's out-of-sample rule for ``ot.da``) or
  ``x + sum_k w_k(x) (T_k - s_k)`` with ``w(x) = softmax_k(-|x - s_k|^2 / temperature)``
  (``extension="soft"``, smooth: no contouring), clipped to ``[0, 1]``. The
  extension runs over blocks of pixels, so a 427 x 640 image takes about a
  second on a CPU. Equal-size palettes with uniform weights make the exact plan
  a permutation: ``solver="hungarian"`` (the default here) runs the Hungarian
  method (:func:`ot_jax.assignment`), exact and much faster than the LP.

References: Reinhard, Ashikhmin, Gooch, Shirley, "Color transfer between
images", 2001; Pitié, Kokaram, Dahyot, "Automated colour grading using colour
distribution transfer", CVIU 2007; Rabin, Delon, Gousseau, "Removing artefacts
from color and contrast modifications", IEEE TIP 2011; Ferradans, Papadakis,
Peyré, Aujol, "Regularized discrete optimal transport", SIAM J. Imaging Sci.
2014; Xie, Wang, Wang, Zha, "A fast proximal point method for computing exact
Wasserstein distance", UAI 2019 (IPOT; thesis figure 2.7).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.geometry import PointCloud, nearest_neighbors
from ot_jax.solvers import Status, assignment, emd, ipot, raise_on_status, result_repr, sinkhorn

__all__ = ["color_transfer", "ColorTransferResult"]

_SPACES = ("channels", "rgb")
_SOLVERS = ("lp", "hungarian", "ipot", "sinkhorn", "quantile")
_EXTENSIONS = ("nearest", "soft")
_BLOCK_ELEMENTS = 2**21  # pixel x palette entries per block of the extension

CHANNEL_BETA = 0.1
"""Default IPOT step for ``space="channels"`` (cost units; max cost is 1).

Measured on china -> flower (256 bins, float64, 10^4 steps): the largest
deviation of the IPOT map from the LP map is 0.16-0.17 levels at beta = 0.1,
0.3-0.4 at 0.05 and 0.3, 0.8-1.3 at 1.0, and 32 levels at the library default
0.01 (1-D histograms on a fine grid have near-ties that the Sinkhorn sweep of
a small step resolves slowly)."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ColorTransferResult:
    """Output of :func:`color_transfer`.

    The colour map is sampled at ``K`` anchor colours: ``mapped_colors[k]`` is
    where ``source_colors[k]`` goes. For ``space="channels"`` the anchors are the
    ``K = n_bins`` levels and column ``c`` is channel ``c``'s level map; for
    ``space="rgb"`` they are the ``K = n_palette`` source palette colours.

    Attributes:
      image: ``[H, W, C]`` recoloured source image, values in ``[0, 1]``.
      source_colors: ``[K, C]`` anchor colours of the source.
      mapped_colors: ``[K, C]`` their images under the barycentric map.
      target_colors: ``[K', C]`` the target's anchors (levels, or target palette).
      cost: ``[P]`` transport cost of each problem solved (``P = C`` channels, or 1).
      status: ``[P]`` int32, each solve's :class:`~ot_jax.Status` (``CONVERGED``
        for ``"quantile"``, which has no iterations).
      converged: ``[P]`` bool, ``status == Status.CONVERGED``.
    """

    image: jax.Array
    source_colors: jax.Array
    mapped_colors: jax.Array
    target_colors: jax.Array
    cost: jax.Array
    status: jax.Array
    converged: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("image", "source_colors", "cost", "status"))


# ----------------------------------------------------------------------------- validation


def _image(img, name: str) -> jax.Array:
    arr = jnp.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] < 1:
        raise ValueError(f"color_transfer: {name} must be an image [H, W, C] (C = 3 for RGB), "
                         f"got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"color_transfer: {name} is empty, shape {tuple(arr.shape)}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if is_concrete(arr):
        values = np.asarray(arr)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"color_transfer: {name} contains NaN or inf")
        lo, hi = float(values.min()), float(values.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"color_transfer: {name} values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                             "(divide 8-bit images by 255)")
    return arr


def _positive(value, name: str):
    if value is None:
        return
    v = np.asarray(value) if is_concrete(value) else None
    if v is not None and not (v.shape == () and np.isfinite(v) and v > 0):
        raise ValueError(f"color_transfer: {name} must be a finite number > 0, got {value!r}")


def _int_at_least(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"color_transfer: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- public entry


def color_transfer(
    source,
    target,
    *,
    space: str = "channels",
    solver: str | None = None,
    n_bins: int = 256,
    epsilon=1e-2,
    beta=None,
    tol: float | None = None,
    max_iters: int | None = None,
    key=None,
    n_palette: int = 512,
    extension: str = "nearest",
    temperature=None,
    block_size: int | None = None,
    throw: bool = False,
) -> ColorTransferResult:
    """Recolour ``source`` with the colour distribution of ``target`` by optimal transport.

    Args:
      source: ``[H, W, C]`` image to recolour, values in ``[0, 1]`` (C = 3 for RGB).
      target: ``[H2, W2, C]`` image giving the colours (any size).
      space: ``"channels"`` (one 1-D problem per channel, thesis figure 2.7) or
        ``"rgb"`` (one 3-D problem between colour palettes).
      solver: ``"lp"`` (channels only, the default there: :func:`ot_jax.emd`, the
        exact LP), ``"hungarian"`` (rgb only, the default there: the exact plan
        between equal-size uniform palettes is a permutation), ``"ipot"``,
        ``"sinkhorn"``, or ``"quantile"`` (channels only: the exact monotone
        1-D plan by the north-west corner rule, no solver, fastest).
      n_bins: channels: histogram levels per channel (static, >= 2); pixel value
        ``v`` falls in bin ``round(v (n_bins - 1))``.
      epsilon: Sinkhorn regularisation, absolute, in cost units. The channel cost
        ``(c_i - c_j)^2`` on levels in ``[0, 1]`` has max 1, so ``epsilon`` is also
        relative to the max cost there (the thesis uses 1e-2 and 1e-3); the rgb
        cost ``|s - t|^2`` lies in ``[0, 3]``.
      beta: IPOT proximal step in cost units. Default :data:`CHANNEL_BETA` = 0.1
        for channels, :func:`ot_jax.ipot`'s ``0.01 x max C`` for rgb.
      tol: solver tolerance; default IPOT's own (1e-4 in float64, 1e-5 on channels; 1e-3 in
        float32, but 1e-4 on channels), Sinkhorn 1e-6 (float64) or 1e-4
        (float32) on the marginal error.
      max_iters: iteration cap of IPOT/Sinkhorn (static). Default 10000 for
        IPOT on channels (1-D histograms converge slowly), 20000 for Sinkhorn,
        IPOT's own otherwise.
      key: ``jax.random`` key drawing the palettes (required for ``space="rgb"``).
      n_palette: rgb: palette size ``K`` (static; capped at the smaller pixel count).
      extension: rgb: ``"nearest"`` (each pixel moves with its nearest source
        palette colour) or ``"soft"`` (softmax-weighted displacements).
      temperature: rgb ``"soft"``: the softmax temperature, in squared colour
        distance. Default: the mean over the source palette of the squared
        distance to the nearest other palette colour (the palette's resolution).
      block_size: rgb: pixels per block of the extension (static).
      throw: raise (also inside ``jit``) when a solve reports a bad status.

    Returns:
      :class:`ColorTransferResult`; ``.image`` is the ``[H, W, C]`` recoloured source.

    Raises:
      ValueError: unknown ``space``/``solver``/``extension``, ``"quantile"`` or
        ``"lp"`` with ``space="rgb"``, ``"hungarian"`` with ``space="channels"``, images that are not ``[H, W, C]`` or whose channel counts
        differ, values outside ``[0, 1]`` or NaN/inf (concrete inputs), bad parameters.

    Everything after validation runs in one ``jax.jit``-compiled function (the
    exact LP on the host through ``jax.pure_callback``). Float64
    (``jax_enable_x64``) is recommended for ``"ipot"`` on channels: its
    agreement with the LP needs plan temperatures far below float32's resolution.

    Examples:
        >>> import jax, ot_jax
        >>> from ot_jax.data import sample_image
        >>> src, tgt = sample_image("china", stride=16), sample_image("flower", stride=16)
        >>> out = ot_jax.color_transfer(src, tgt, solver="quantile")
        >>> out.image.shape
        (27, 40, 3)
        >>> rgb = ot_jax.color_transfer(src, tgt, space="rgb", key=jax.random.PRNGKey(0), n_palette=64)
        >>> rgb.mapped_colors.shape
        (64, 3)
    """
    if space not in _SPACES:
        raise ValueError(f"color_transfer: unknown space {space!r}; choose one of {', '.join(map(repr, _SPACES))}")
    if solver is None:
        solver = "lp" if space == "channels" else "hungarian"
    if solver not in _SOLVERS:
        raise ValueError(f"color_transfer: unknown solver {solver!r}; choose one of {', '.join(map(repr, _SOLVERS))}")
    source = _image(source, "source")
    target = _image(target, "target")
    if source.shape[-1] != target.shape[-1]:
        raise ValueError(f"color_transfer: source has {source.shape[-1]} channels but target has "
                         f"{target.shape[-1]}; they must match")
    dtype = jnp.result_type(source, target)
    source, target = source.astype(dtype), target.astype(dtype)
    _positive(epsilon, "epsilon")
    _positive(beta, "beta")
    _positive(tol, "tol")
    _positive(temperature, "temperature")
    if max_iters is not None:
        max_iters = _int_at_least(max_iters, "max_iters", 1)
    if tol is None and solver == "sinkhorn":
        tol = 1e-4 if jnp.finfo(dtype).bits <= 32 else 1e-6
    settings = dict(epsilon=epsilon, beta=beta, tol=tol)

    if space == "channels":
        n_bins = _int_at_least(n_bins, "n_bins", 2)
        if max_iters is None:
            max_iters = {"ipot": 10000, "sinkhorn": 20000}.get(solver)
        if solver == "ipot":
            if beta is None:
                settings["beta"] = CHANNEL_BETA
            if tol is None and jnp.finfo(dtype).bits <= 32:
                settings["tol"] = 1e-4  # ipot's float32 default 1e-3 leaves the map ~9 levels off
            elif tol is None:
                settings["tol"] = 1e-5  # certified; ipot's float64 default 1e-4 leaves the map ~0.3 levels off
        if solver == "hungarian":
            raise ValueError("color_transfer: solver='hungarian' matches equal-size palettes (space='rgb'); "
                             "the channel histograms have unequal weights: use solver='lp' or 'quantile'")
        out = _channels(source, target, settings, solver=solver, n_bins=n_bins, max_iters=max_iters)
        return _checked(out, solver, throw)

    if solver == "quantile":
        raise ValueError("color_transfer: solver='quantile' is the 1-D monotone map; use it with space='channels'")
    if solver == "lp":
        raise ValueError("color_transfer: space='rgb' solves equal-size uniform palettes, whose exact plan is a "
                         "permutation: use solver='hungarian' (exact, far faster than the LP)")
    if extension not in _EXTENSIONS:
        raise ValueError(f"color_transfer: unknown extension {extension!r}; "
                         f"choose one of {', '.join(map(repr, _EXTENSIONS))}")
    if key is None:
        raise ValueError("color_transfer: space='rgb' samples palettes and needs a key, e.g. key=jax.random.PRNGKey(0)")
    n_palette = _int_at_least(n_palette, "n_palette", 1)
    if block_size is not None:
        block_size = _int_at_least(block_size, "block_size", 1)
    if max_iters is None and solver == "sinkhorn":
        max_iters = 20000
    k = min(n_palette, source.shape[0] * source.shape[1], target.shape[0] * target.shape[1])
    out = _rgb(source, target, key, settings, temperature, solver=solver, n_palette=k,
               extension=extension, max_iters=max_iters, block_size=block_size)
    return _checked(out, solver, throw)


def _checked(out: ColorTransferResult, solver: str, throw: bool) -> ColorTransferResult:
    if not throw:
        return out
    parameter = {"ipot": "beta", "sinkhorn": "epsilon"}.get(solver)
    return raise_on_status(out, f"color_transfer (solver={solver!r})", parameter, field="image")


# ----------------------------------------------------------------------------- shared pieces


def _solver_kwargs(solver, settings, max_iters):
    if solver == "sinkhorn":
        kw = dict(epsilon=settings["epsilon"], tol=settings["tol"])
    elif solver == "ipot":
        kw = dict(beta=settings["beta"], tol=settings["tol"])
    else:
        return {}
    if max_iters is not None:
        kw["max_iters"] = max_iters
    return kw


def _barycentric(out, values, fallback):
    """``sum_j P_ij values_j / sum_j P_ij`` for an entropic result; ``fallback`` where a row is empty.

    ``values: [m, C]``, ``fallback: [n, C]`` -> ``[n, C]``; the plan is applied lazily.
    """
    num = jax.vmap(lambda v: out.apply(v, axis=1), in_axes=1, out_axes=1)(values)
    mass = out.apply(jnp.ones(values.shape[0], values.dtype), axis=1)[:, None]
    ok = mass > 0
    return jnp.where(ok, num / jnp.where(ok, mass, 1.0), fallback)


def _dense_barycentric(plan, values, fallback):
    mass = jnp.sum(plan, axis=1, keepdims=True)
    ok = mass > 0
    return jnp.where(ok, (plan @ values) / jnp.where(ok, mass, 1.0), fallback)


def _monotone_plan(a, b):
    """The exact 1-D plan (north-west corner rule): ``[n, m]`` from cumulative histograms ``a: [n]``, ``b: [m]``."""
    ca, cb = jnp.cumsum(a), jnp.cumsum(b)
    lo = jnp.maximum((ca - a)[:, None], (cb - b)[None, :])
    hi = jnp.minimum(ca[:, None], cb[None, :])
    return jnp.maximum(hi - lo, 0.0)


# ----------------------------------------------------------------------------- channels


@functools.partial(jax.jit, static_argnames=("solver", "n_bins", "max_iters"))
def _channels(source, target, settings, *, solver, n_bins, max_iters):
    dtype = source.dtype
    n_channels = source.shape[-1]
    levels = jnp.linspace(0.0, 1.0, n_bins, dtype=dtype)
    cost = (levels[:, None] - levels[None, :]) ** 2

    def quantise(img):  # [H, W, C] -> bins [N, C] int32, histograms [C, n_bins]
        bins = jnp.clip(jnp.round(img.reshape(-1, n_channels) * (n_bins - 1)), 0, n_bins - 1).astype(jnp.int32)
        hist = jax.vmap(lambda col: jnp.bincount(col, length=n_bins), in_axes=1)(bins)
        return bins, hist.astype(dtype) / bins.shape[0]

    bins_s, hist_s = quantise(source)
    _, hist_t = quantise(target)
    kwargs = _solver_kwargs(solver, settings, max_iters)
    column = levels[:, None]

    def level_map(a, b):  # one channel: [n_bins] histograms -> ([n_bins] map, cost, converged)
        if solver == "quantile":
            plan = _monotone_plan(a, b)
            mapped = _dense_barycentric(plan, column, column)[:, 0]
            return mapped, jnp.sum(plan * cost), jnp.asarray(Status.CONVERGED, jnp.int32)
        if solver == "lp":
            out = emd(cost, a, b)
            return _dense_barycentric(out.plan, column, column)[:, 0], out.cost, out.status
        solve = ipot if solver == "ipot" else sinkhorn
        out = solve(cost, a, b, **kwargs)
        return _barycentric(out, column, column)[:, 0], out.cost, out.status

    maps, costs, status = jax.vmap(level_map)(hist_s, hist_t)  # maps: [C, n_bins]
    pixels = jax.vmap(lambda m, col: m[col], in_axes=(0, 1), out_axes=1)(maps, bins_s)
    anchors = jnp.broadcast_to(column, (n_bins, n_channels))
    return ColorTransferResult(image=pixels.reshape(source.shape), source_colors=anchors,
                               mapped_colors=maps.T, target_colors=anchors, cost=costs, status=status,
                               converged=status == Status.CONVERGED)


# ----------------------------------------------------------------------------- rgb


@functools.partial(jax.jit, static_argnames=("solver", "n_palette", "extension", "max_iters", "block_size"))
def _rgb(source, target, key, settings, temperature, *, solver, n_palette, extension, max_iters, block_size):
    n_channels = source.shape[-1]
    pix_s = source.reshape(-1, n_channels)
    pix_t = target.reshape(-1, n_channels)
    key_s, key_t = jax.random.split(key)
    pal_s = pix_s[jax.random.choice(key_s, pix_s.shape[0], (n_palette,), replace=False)]
    pal_t = pix_t[jax.random.choice(key_t, pix_t.shape[0], (n_palette,), replace=False)]

    if solver == "hungarian":  # equal sizes, uniform weights: the optimal plan is a permutation
        out = assignment(PointCloud(pal_s, pal_t).cost_matrix, method="hungarian")
        mapped = pal_t[out.permutation]
        cost, status = out.cost / n_palette, out.status
    else:
        solve = ipot if solver == "ipot" else sinkhorn
        out = solve(PointCloud(pal_s, pal_t), **_solver_kwargs(solver, settings, max_iters))
        mapped = _barycentric(out, pal_t, pal_s)
        cost, status = out.cost, out.status
    shift = mapped - pal_s  # [K, C] displacement of each palette colour

    k = block_size if block_size is not None else max(1, _BLOCK_ELEMENTS // n_palette)
    k = min(k, pix_s.shape[0])
    if extension == "nearest":
        index, _ = nearest_neighbors(pix_s, pal_s, block_size=k)
        moved = pix_s + shift[index]
    else:
        if temperature is None:
            d2 = PointCloud(pal_s, pal_s).cost_matrix
            d2 = jnp.where(jnp.eye(n_palette, dtype=bool), jnp.inf, d2)
            nn = jnp.min(d2, axis=1) if n_palette > 1 else jnp.ones((1,), pix_s.dtype)
            temperature = jnp.mean(nn)
            temperature = jnp.where(temperature > 0, temperature, 1.0)
        pal_sq = jnp.sum(pal_s**2, axis=1)

        def soft(p):  # p: [C] pixel (lax.map vmaps over a block)
            logits = (2.0 * (pal_s @ p) - pal_sq) / temperature  # -|p - s_k|^2 / T up to a constant
            return p + jax.nn.softmax(logits) @ shift

        moved = jax.lax.map(soft, pix_s, batch_size=k)
    image = jnp.clip(moved, 0.0, 1.0).reshape(source.shape)
    return ColorTransferResult(image=image, source_colors=pal_s, mapped_colors=mapped, target_colors=pal_t,
                               cost=jnp.reshape(cost, (1,)), status=jnp.reshape(status, (1,)),
                               converged=jnp.reshape(status == Status.CONVERGED, (1,)))
