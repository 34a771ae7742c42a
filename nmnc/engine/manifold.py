"""Estimates of a layer's neural manifold: the top-k principal subspace U of its recent activity.

Space ("what a neuron is" for a conv layer):
- ``map``: the full C*H*W activity vector (n = C*H*W; randomized low-rank SVD);
- ``channel``: channel vectors at each location (n = C), one subspace shared across positions.

Estimators (one class each, behind :class:`ManifoldEstimator`; :func:`make_manifold` picks one
by name):
- ``pca`` (:class:`BufferPCA`): SVD of a ring buffer of recent activity, refreshed every
  ``refresh`` steps;
- ``ema`` (:class:`EMACovariance`): exponential moving average of the covariance, eigendecomposed
  at each refresh;
- ``oja`` (:class:`Sanger`): Sanger's generalized Hebbian rule, a local streaming subspace rule;
- ``fd`` (:class:`FrequentDirections`): a rank-2k frequent-directions sketch of the
  moving-average covariance: O(n k) memory at any layer size.

``auto`` (:func:`pick_estimator`) is ``pca`` where the layer's buffer fits in a memory budget
(``manifold_mb`` per layer) and ``fd`` where it does not (an ImageNet ResNet-18's first layers).

``k`` is fixed, or (``k_rule``) the smallest k explaining ``var_threshold`` of the variance, or
the participation ratio; adaptive k never exceeds ``k_max``.

Noise shape (``noise_shape``):
- ``white``: ``xi = sigma U z``, z ~ N(0, I_k): isotropic in span(U), covariance sigma^2 U U^T;
- ``pca``: ``xi = sigma U diag(s) z`` with s_i proportional to the square root of the variance
  along U's column i, normalised so that mean(s_i^2) = 1 (the same total energy as white noise
  in the subspace): covariance sigma^2 U diag(s^2) U^T. The rules keep the estimate
  ``J_hat = (1/P) sum_p dy_p xi_p^T / sigma^2``, so its mean is ``J U diag(s^2) U^T``: biased
  inside the subspace too (high-variance directions weigh more), on top of the projection bias.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from ..analysis.dimension import spectrum_pr
from ..errors import NmncError, UnknownNameError
from .noise import normal


# ---- spaces: activity (B, *shape) <-> rows in the manifold's space --------------------------
class Space(ABC):
    """How a layer's activity maps to the vectors whose subspace is estimated, and back."""

    def __init__(self, shape: tuple[int, ...], max_rows: int):
        self.shape = tuple(shape)
        self.max_rows = max_rows

    @property
    @abstractmethod
    def dim(self) -> int:
        """n, the length of one vector."""

    @abstractmethod
    def rows(self, h: torch.Tensor) -> torch.Tensor:
        """Activity (B, *shape) as rows (M, n)."""

    @abstractmethod
    def sample(
        self,
        U: torch.Tensor,
        P: int,
        B: int,
        sigma: float,
        gen: torch.Generator,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``sigma * U diag(scale) z`` for every example (and position): (P, B, *shape);
        ``scale`` (k,) None means white noise (all ones)."""

    @abstractmethod
    def project(self, U: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``U U^T g`` for activity-space vectors g (B, *shape)."""


class MapSpace(Space):
    """A neuron is one unit of the full C*H*W activity map."""

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def rows(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(1)

    def sample(self, U, P, B, sigma, gen, scale=None):
        z = normal(gen, (P, B, U.shape[1]), U.device)  # (P, B, k)
        if scale is not None:
            z = z * scale
        return (sigma * z @ U.T).view(P, B, *self.shape)

    def project(self, U, g):
        flat = g.flatten(1)
        return ((flat @ U) @ U.T).view_as(g)


class ChannelSpace(Space):
    """A neuron is one channel at one location; the subspace is shared across locations."""

    def __init__(self, shape: tuple[int, ...], max_rows: int):
        if len(shape) != 3:
            raise NmncError(
                f"space=channel needs a conv layer (C, H, W); this layer has shape {shape}; "
                "use space=map"
            )
        super().__init__(shape, max_rows)

    @property
    def dim(self) -> int:
        return self.shape[0]

    def rows(self, h: torch.Tensor) -> torch.Tensor:
        rows = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])  # (B*H*W, C)
        if len(rows) > self.max_rows:  # evenly spaced locations keep the estimate cheap
            rows = rows[torch.linspace(0, len(rows) - 1, self.max_rows, device=rows.device).long()]
        return rows

    def sample(self, U, P, B, sigma, gen, scale=None):
        C, H, W = self.shape
        z = normal(gen, (P, B, H * W, U.shape[1]), U.device)  # (P, B, H*W, k)
        if scale is not None:
            z = z * scale
        return (sigma * z @ U.T).view(P, B, H, W, C).permute(0, 1, 4, 2, 3)

    def project(self, U, g):
        rows = g.permute(0, 2, 3, 1)
        return ((rows @ U) @ U.T).permute(0, 3, 1, 2)


SPACES: dict[str, type[Space]] = {"map": MapSpace, "channel": ChannelSpace}
NOISE_SHAPES = ("white", "pca")  # isotropic in span(U), or std along U's columns ~ sqrt(variance)


# ---- choosing k from a refreshed spectrum ---------------------------------------------------
def _k_fixed(m: ManifoldEstimator, lam: torch.Tensor, var_total: float, cap: int) -> int:
    return cap


def _k_variance(m: ManifoldEstimator, lam: torch.Tensor, var_total: float, cap: int) -> int:
    frac = torch.cumsum(lam, 0) / max(var_total, 1e-30)  # explained-variance fraction
    return int(min(cap, int((frac < m.var_threshold).sum()) + 1))


def _k_pr(m: ManifoldEstimator, lam: torch.Tensor, var_total: float, cap: int) -> int:
    return int(max(1, min(cap, round(m.pr or 1))))


K_RULES = {"fixed": _k_fixed, "variance": _k_variance, "pr": _k_pr}


# ---- estimators -----------------------------------------------------------------------------
class ManifoldEstimator(ABC):
    """What every estimator shares: the space, the running mean, the refresh clock, the choice
    of k and checkpoint state. Subclasses take in activity rows (:meth:`_update`) and produce a
    basis with its variances at each refresh (:meth:`_basis`).

    ``ema_decay`` is the per-step decay of the running mean (EMACovariance's covariance too).
    ``noise_shape`` is ``white`` or ``pca`` (see the module docstring).
    """

    OPTIONS: ClassVar[tuple[str, ...]] = ()  # settings only this estimator takes
    STATE: ClassVar[tuple[str, ...]] = ("U", "spectrum", "pr", "last_refresh", "mean")

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        k: int = 32,
        space: str = "map",
        centered: bool = True,
        refresh: int = 20,
        k_rule: str = "fixed",
        var_threshold: float = 0.9,
        k_max: int = 256,
        ema_decay: float = 0.99,
        max_rows: int = 4096,
        seed: int = 0,
        noise_shape: str = "white",
    ):
        for name, value, allowed in (
            ("space", space, SPACES),
            ("k_rule", k_rule, K_RULES),
            ("noise_shape", noise_shape, NOISE_SHAPES),
        ):
            if value not in allowed:
                raise UnknownNameError(f"manifold {name}", value, allowed)
        self.space = SPACES[space](shape, max_rows)
        self.shape, self.dim = self.space.shape, self.space.dim
        self.centered, self.refresh, self.ema_decay, self.seed = centered, refresh, ema_decay, seed
        self.k_rule, self.var_threshold = k_rule, var_threshold
        self.noise_shape = noise_shape
        self.k_cap = min(k if k_rule == "fixed" else k_max, self.dim)
        self.U: torch.Tensor | None = None  # (dim, k), orthonormal columns
        self.spectrum: torch.Tensor | None = None  # variances along U's columns
        self.pr: float | None = None  # participation ratio of the spectrum, where known
        self.last_refresh = -(10**9)
        self.mean: torch.Tensor | None = None  # (dim,) running mean of the rows

    @property
    def k(self) -> int:
        """Columns of U (0 before the first refresh)."""
        return 0 if self.U is None else self.U.shape[1]

    def vectors(self, h: torch.Tensor) -> torch.Tensor:
        """Rows in the manifold's space: (B, C*H*W) for map, (rows, C) for channel."""
        # bf16 activity under autocast: the estimate is kept in float32
        return self.space.rows(h.detach().float())

    # ---- updates ----------------------------------------------------------------------------
    def observe(self, h: torch.Tensor, step: int) -> None:
        """Take in a batch of clean activity; refresh U every ``refresh`` steps (and at the
        start)."""
        X = self.vectors(h)
        self._move(X.device)
        self._update_mean(X)
        self._update(X)
        if self.U is None or step - self.last_refresh >= self.refresh:
            self.refresh_now()
            self.last_refresh = step

    def _move(self, device: torch.device) -> None:
        """Put the state on ``device`` (a checkpoint loads on the CPU; training may be on a GPU)."""
        for key in self.STATE:
            value = getattr(self, key)
            if isinstance(value, torch.Tensor) and value.device != device:
                setattr(self, key, value.to(device))

    def _update_mean(self, X: torch.Tensor) -> None:
        d = self.ema_decay
        if self.mean is None:
            self.mean = X.mean(0)
        else:
            self.mean = d * self.mean + (1 - d) * X.mean(0)

    def refresh_now(self) -> None:
        """Recompute U (and its spectrum) from what the estimator holds, off the clock."""
        V, lam, var_total = self._basis()
        k = self._choose_k(lam, var_total)
        self.U = V[:, :k].contiguous()
        self.spectrum = lam[:k]

    def _choose_k(self, lam: torch.Tensor, var_total: float) -> int:
        cap = min(self.k_cap, lam.numel())
        return K_RULES[self.k_rule](self, lam, var_total, cap)

    @abstractmethod
    def _update(self, X: torch.Tensor) -> None:
        """Take in rows X (M, dim); ``self.mean`` already includes them."""

    @abstractmethod
    def _basis(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Orthonormal directions V (dim, >=k) by decreasing variance, their variances, and the
        total variance; sets ``self.pr`` where the estimator knows the whole spectrum."""

    # ---- noise ------------------------------------------------------------------------------
    def noise_scale(self) -> torch.Tensor | None:
        """s (k,) for ``noise_shape='pca'``: sqrt of the variances along U's columns, normalised
        to mean(s^2) = 1 (all ones when the spectrum is flat or zero); None for white noise."""
        if self.noise_shape == "white":
            return None
        lam = self.spectrum.to(self.U.device, torch.float32).clamp_min(0)
        if not float(lam.sum()) > 0:
            return torch.ones_like(lam)
        return (lam / lam.mean()).sqrt()

    def sample(self, P: int, B: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
        """Perturbations ``sigma * U diag(s) z``, z ~ N(0, I_k): (P, B, *shape), covariance
        sigma^2 U diag(s^2) U^T (s = 1: white noise, covariance sigma^2 U U^T)."""
        return self.space.sample(self.U, P, B, sigma, gen, self.noise_scale())

    def project(self, g: torch.Tensor) -> torch.Tensor:
        """Pi g: the part of activity-space vectors (B, *shape) on the manifold."""
        return self.space.project(self.U, g)

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain tensors and types (checkpoints load with ``weights_only=True``)."""
        return {key: getattr(self, key) for key in self.STATE}

    def state_bytes(self) -> int:
        """Bytes of the tensors the estimator holds (what a checkpoint stores for it)."""
        return sum(t.numel() * t.element_size() for t in _tensors(self.state_dict()))

    def load_state_dict(self, state: dict) -> None:
        for key in self.STATE:
            if key in state:
                setattr(self, key, state[key])


class BufferPCA(ManifoldEstimator):
    """SVD of a ring buffer of the last ``buffer`` activity rows (randomized SVD for large maps)."""

    OPTIONS = ("buffer",)
    STATE = ManifoldEstimator.STATE + ("buf", "count")

    def __init__(self, shape: tuple[int, ...], *, buffer: int = 1024, **common):
        super().__init__(shape, **common)
        self.buffer_size = buffer
        self.buf: torch.Tensor | None = None  # (buffer, dim), allocated on first use
        self.count = 0  # rows written to the ring buffer so far

    def _update(self, X: torch.Tensor) -> None:
        if self.buf is None:
            self.buf = torch.zeros(self.buffer_size, self.dim, device=X.device)
        X = X[-self.buffer_size :]
        idx = (self.count + torch.arange(len(X), device=X.device)) % self.buffer_size
        self.buf[idx] = X
        self.count += len(X)

    def state_dict(self) -> dict:
        """Only the rows written so far: a buffer that is not yet full is saved short."""
        state = super().state_dict()
        if self.buf is not None:
            state["buf"] = self.buf[: min(self.count, self.buffer_size)].clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.buf is not None and len(self.buf) < self.buffer_size:
            full = self.buf.new_zeros(self.buffer_size, self.dim)
            full[: len(self.buf)] = self.buf
            self.buf = full

    def _basis(self):
        X = self.buf[: min(self.count, self.buffer_size)]
        if self.centered:
            X = X - X.mean(0)
        q = min(self.k_cap, *X.shape)
        total = float((X**2).sum())
        S, V = self._svd(X, q)
        lam = S**2 / max(len(X) - 1, 1)
        gram = X @ X.T
        self.pr = float(total**2 / (gram**2).sum().clamp_min(1e-30))
        return V, lam, total / max(len(X) - 1, 1)

    def _svd(self, X: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Singular values and right singular vectors (dim, >=q) of X."""
        if min(X.shape) <= 2 * q + 10 or self.dim <= 1024:
            _, S, Vh = torch.linalg.svd(X, full_matrices=False)
            return S, Vh.T
        g_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed + self.count)  # randomized SVD, reproducible on resume
        try:
            _, S, V = torch.svd_lowrank(X, q=min(q + 10, *X.shape), niter=3)
        finally:
            torch.random.set_rng_state(g_state)
        return S, V


class EMACovariance(ManifoldEstimator):
    """Moving-average covariance (decay ``ema_decay`` per step), eigendecomposed at each refresh."""

    MAX_DIM: ClassVar[int] = 8192  # a dim x dim covariance beyond this is too large to keep
    STATE = ManifoldEstimator.STATE + ("cov",)

    def __init__(self, shape: tuple[int, ...], **common):
        super().__init__(shape, **common)
        if self.dim > self.MAX_DIM:
            raise NmncError(
                f"estimator=ema keeps a {self.dim}x{self.dim} covariance; use estimator=pca or "
                f"oja, or space=channel, for layers over {self.MAX_DIM} units"
            )
        self.cov: torch.Tensor | None = None  # (dim, dim) moving-average second moment

    def _update(self, X: torch.Tensor) -> None:
        d = self.ema_decay
        second = X.T @ X / len(X)
        self.cov = second if self.cov is None else d * self.cov + (1 - d) * second

    def _basis(self):
        C = self.cov - (torch.outer(self.mean, self.mean) if self.centered else 0)
        evals, evecs = torch.linalg.eigh(C)
        lam, V = evals.flip(0).clamp_min(0), evecs.flip(1)  # decreasing variance
        self.pr = spectrum_pr(lam)
        return V, lam, float(lam.sum())


class Sanger(ManifoldEstimator):
    """Sanger's generalized Hebbian rule: k_cap weight rows converge to the top principal axes.

    k is the cap. The rule itself learns no variances; the variances along the learned directions
    (``spectrum``, used by ``noise_shape='pca'``) come from a moving average of the k x k second
    moment of the projections y = W x, rotated onto the orthonormalised directions.
    """

    OPTIONS = ("oja_lr",)
    STATE = ManifoldEstimator.STATE + ("W", "sq_norm", "ycov")

    def __init__(self, shape: tuple[int, ...], *, oja_lr: float = 0.2, **common):
        super().__init__(shape, **common)
        self.oja_lr = oja_lr  # in units of the data's mean squared norm
        self.W: torch.Tensor | None = None  # (k, dim) Sanger weights
        self.sq_norm: float = 0.0  # running mean squared norm of the rows
        self.ycov: torch.Tensor | None = None  # (k, k) moving-average second moment of W x

    def _update(self, X: torch.Tensor) -> None:
        if self.centered:
            X = X - self.mean
        if self.W is None:
            g = torch.Generator().manual_seed(self.seed)
            basis = torch.linalg.qr(torch.randn(self.dim, self.k_cap, generator=g))[0]  # (dim, k)
            self.W = basis.T.contiguous().to(X.device)
        energy = float((X**2).sum(1).mean())
        self.sq_norm = 0.9 * self.sq_norm + 0.1 * energy if self.sq_norm else energy
        Y = X @ self.W.T  # (M, k) projections
        second = Y.T @ Y / len(X)
        self.ycov = second if self.ycov is None else 0.9 * self.ycov + 0.1 * second
        # Sanger: dW = lr (y x^T - LT(y y^T) W), learning rate in units of the data's squared norm
        dW = (Y.T @ X - torch.tril(Y.T @ Y) @ self.W) / len(X)
        self.W += (self.oja_lr / max(self.sq_norm, 1e-12)) * dW

    def _basis(self):
        V, R = torch.linalg.qr(self.W.T)  # orthonormalised learned rows: W^T = V R
        if self.ycov is None:  # a state saved before the variances were kept
            lam = torch.ones(V.shape[1], device=V.device)
        else:  # V^T x = R^-T y, so the variances along V are diag(R^-T E[y y^T] R^-1)
            left = torch.linalg.solve_triangular(R.T, self.ycov, upper=False)
            lam = torch.linalg.solve_triangular(R.T, left.T, upper=False).diagonal().clamp_min(0)
        return V, lam, float(lam.sum())

    def _choose_k(self, lam: torch.Tensor, var_total: float) -> int:
        return min(self.k_cap, lam.numel())


class FrequentDirections(ManifoldEstimator):
    """A sketch B (l x n, l = 2 k_cap) with ``B^T B`` close to the moving-average covariance of
    the centred rows, ``C <- (1 - w) C + w X^T X / M``: each update stacks ``sqrt(1 - w) B`` on
    the new rows and keeps the top l directions of the stack (frequent directions without
    shrinkage), so memory is O(n k) whatever the layer size. The t-th update weighs
    ``w = max(1 - ema_decay, 1 / t)``: a plain average of the first 1 / (1 - ema_decay) batches,
    then an exponential moving average. B's rows are orthogonal: at a refresh they are the basis,
    their squared norms the variances. ``energy`` follows the trace of C, the total variance (the
    tail the sketch drops included).
    """

    STATE = ManifoldEstimator.STATE + ("B", "energy", "updates")
    SKETCH: ClassVar[int] = 2  # sketch rows per manifold dimension

    def __init__(self, shape: tuple[int, ...], **common):
        super().__init__(shape, **common)
        self.rank = min(self.SKETCH * self.k_cap, self.dim)
        self.B: torch.Tensor | None = None  # (<= rank, dim), orthogonal rows
        self.energy = 0.0
        self.updates = 0

    def _update(self, X: torch.Tensor) -> None:
        if self.centered:
            X = X - self.mean
        rows = X / math.sqrt(len(X))
        self.updates += 1
        w = max(1 - self.ema_decay, 1 / self.updates)
        energy = float((rows**2).sum())
        if self.B is None:
            stack = rows
        else:
            stack = torch.cat([math.sqrt(1 - w) * self.B, math.sqrt(w) * rows])
        self.energy = (1 - w) * self.energy + w * energy
        self.B = top_rows(stack, self.rank)

    def _basis(self):
        lam = (self.B**2).sum(1)
        kept = lam > 1e-10 * lam.max().clamp_min(1e-30)  # a rank-deficient stack: no direction
        lam = lam[kept]
        V = (self.B[kept] / lam.sqrt()[:, None]).T  # (dim, l), orthonormal columns
        self.pr = self.energy**2 / max(float((lam**2).sum()), 1e-30)  # a bound: the tail is unseen
        return V, lam, self.energy


def top_rows(Z: torch.Tensor, rank: int) -> torch.Tensor:
    """The best rank-``rank`` approximation of ``Z^T Z`` as ``B^T B``, B with orthogonal rows in
    order of decreasing norm: from the eigenvectors of the smaller of ``Z Z^T`` and ``Z^T Z``."""
    m, n = Z.shape
    Zd = Z.double()
    if m <= n:  # rows are few: B = W^T Z, W the top eigenvectors of Z Z^T
        evals, W = torch.linalg.eigh(Zd @ Zd.T)
        return (W.flip(1)[:, :rank].T @ Zd).to(Z.dtype)
    evals, V = torch.linalg.eigh(Zd.T @ Zd)  # columns are few: B = sqrt(lam) V^T
    lam, V = evals.flip(0)[:rank].clamp_min(0), V.flip(1)[:, :rank]
    return (lam.sqrt()[:, None] * V.T).to(Z.dtype)


def _tensors(state):
    """Every tensor in a nested state dict."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)


ESTIMATORS: dict[str, type[ManifoldEstimator]] = {
    "pca": BufferPCA,
    "ema": EMACovariance,
    "oja": Sanger,
    "fd": FrequentDirections,
}
AUTO = "auto"  # pca where the layer's buffer fits in manifold_mb, fd where it does not


def pick_estimator(name: str, dim: int, buffer: int, budget_mb: float) -> str:
    """The estimator ``name`` stands for at a layer of ``dim`` units: ``auto`` is batch PCA when
    its buffer (``buffer x dim`` float32) fits in ``budget_mb``, else the O(n k) sketch."""
    if name != AUTO:
        return name
    return "pca" if buffer * dim * 4 <= budget_mb * 2**20 else "fd"


def make_manifold(
    shape: tuple[int, ...], estimator: str = "pca", manifold_mb: float = 96.0, **settings
) -> ManifoldEstimator:
    """The manifold estimator named ``estimator`` for a layer of per-example ``shape``.

    ``settings`` are :class:`ManifoldEstimator`'s keywords plus the chosen estimator's own
    (``buffer`` for pca, ``oja_lr`` for oja); another estimator's own settings are ignored, so one
    rule configuration serves every estimator. ``auto`` picks by ``manifold_mb`` (see
    :func:`pick_estimator`).
    """
    if estimator not in (*ESTIMATORS, AUTO):
        raise UnknownNameError("manifold estimator", estimator, [*ESTIMATORS, AUTO])
    dim = shape[0] if settings.get("space") == "channel" else math.prod(shape)  # Space.dim
    estimator = pick_estimator(estimator, dim, settings.get("buffer", 1024), manifold_mb)
    cls = ESTIMATORS[estimator]
    foreign = {key for other in ESTIMATORS.values() for key in other.OPTIONS} - set(cls.OPTIONS)
    return cls(shape, **{key: value for key, value in settings.items() if key not in foreign})


Manifold = make_manifold  # the name callers used when one class held every estimator
