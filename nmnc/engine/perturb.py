"""The perturbation engine: noise-correlation estimates of activity gradients.

For a layer with clean activity ``h`` (B, *shape) and the network above it ``f`` (the stages above
the layer, with BatchNorm frozen), draw perturbations ``xi`` (P, B, *shape) with covariance
``var * Pi`` (Pi = I for VNC, U U^T for NMNC) and estimate ``g = J^T e``:

    dy_p  = (f(h + xi_p) - f(h - xi_p)) / 2           # (P, B, n_o) antithetic output change
    g_hat = (1/P) sum_p xi_p (dy_p . e) / var         # Jacobian form: (B, *shape)
    g_hat = (1/P) sum_p xi_p dloss_p / var            # scalar-loss form

All P perturbations of a batch run through ``f`` as one batched forward pass (split into chunks of
whole copies of the batch, at most ``max_batch`` rows where B allows, only to bound memory), never
as a Python loop over single forwards. Copies are flattened as (P, B) with B innermost, so a chunk
of m*B rows pairs with clean activities of the B examples repeated m times (the ``context`` of
``forward_from`` for networks with skip connections).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from .. import objective


@contextmanager
def frozen_norm(model: nn.Module):
    """BatchNorm layers use running statistics (and do not update them) inside the block."""
    norms = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


output_error = objective.output_error  # e = dL/dlogits: (softmax - onehot) / B for images


def _batched(f: Callable, inputs: torch.Tensor, max_batch: int, B: int = 1) -> torch.Tensor:
    rows = max(B, max_batch // B * B)  # whole copies of a batch of B per chunk
    if len(inputs) <= rows:
        return objective.full(f(inputs))
    return torch.cat([objective.full(f(c)) for c in inputs.split(rows)])


def _scores(plus, minus, e, y, antithetic: bool, form: str) -> torch.Tensor:
    """(P, B) scalar per perturbation: dy_p . e (Jacobian form) or dloss_p (scalar-loss form)."""
    half = 2 if antithetic else 1
    if form == "jacobian":
        dy = (plus - minus) / half  # (P, B, n_o) output change per perturbation
        return (dy * e.unsqueeze(0)).sum(-1)
    if form == "loss":  # each example's share of the batch-mean cross-entropy: (P, B)
        return (objective.shares(plus, y) - objective.shares(minus.expand_as(plus), y)) / half
    raise ValueError(f"form must be 'jacobian' or 'loss', got {form!r}")


def _project(s: torch.Tensor, xi: torch.Tensor, var: float) -> torch.Tensor:
    """g_hat = (1/P) sum_p s_p xi_p / var, per example: (B, *shape)."""
    dtype = torch.promote_types(torch.promote_types(s.dtype, xi.dtype), torch.float32)
    return torch.einsum("pb,pb...->b...", s.to(dtype), xi.to(dtype)) / (xi.shape[0] * var)


def correlate(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    xi: torch.Tensor,
    var: float,
    e: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    antithetic: bool = True,
    form: str = "jacobian",
    max_batch: int = 4096,
) -> torch.Tensor:
    """Noise-correlation estimate of the activity gradient ``J^T e`` (B, *shape).

    ``f`` maps activity (N, *shape) to logits (N, n_o), N a multiple of B (copies of the batch,
    B innermost); ``xi`` (P, B, *shape) are the perturbations, whose covariance is ``var`` times a
    projector; ``e`` (B, n_o) is the output error (Jacobian form) and ``y`` (B,) the labels
    (scalar-loss form, batch-mean cross-entropy).
    """
    P, B = xi.shape[:2]
    with torch.no_grad():
        if antithetic:
            hp = torch.cat([h.unsqueeze(0) + xi, h.unsqueeze(0) - xi]).flatten(
                0, 1
            )  # (2P*B, *shape)
            out = _batched(f, hp, max_batch, B).view(2, P, B, -1)  # (2, P, B, n_o) logits
            plus, minus = out[0], out[1]
        else:
            plus = _batched(f, (h.unsqueeze(0) + xi).flatten(0, 1), max_batch, B).view(P, B, -1)
            minus = objective.full(f(h)).unsqueeze(0)  # one clean pass of the same frozen network
        return _project(_scores(plus, minus, e, y, antithetic, form), xi, var).to(h.dtype)


def correlate_all(
    model,
    layers: list[str],
    hs: dict,
    xis: dict,
    variances: dict,
    e=None,
    y=None,
    antithetic: bool = True,
    form: str = "jacobian",
    context: dict | None = None,
) -> dict:
    """All layers perturbed at once: one pass per perturbation from the lowest layer up, the noise
    of higher layers added by taps (forward hooks) as the copies pass them.

    ``context`` holds clean activities (B, *shape) of layers below the lowest perturbed one that
    stages above it read through skip connections (see ``StagedNet.forward_from``)."""
    from .taps import inject

    first = layers[0]
    P, B = xis[first].shape[:2]
    sign = lambda xi: torch.cat([xi, -xi]) if antithetic else xi  # noqa: E731
    edits = {
        name: (lambda out, xi=xis[name]: out + sign(xi).flatten(0, 1).to(out.dtype))
        for name in layers[1:]
    }
    with torch.no_grad():
        h0 = hs[first].unsqueeze(0)
        with inject(model, edits):
            hp = (h0 + sign(xis[first])).flatten(0, 1)
            out = objective.full(model.forward_from(first, hp, context))
        if antithetic:
            out = out.view(2, P, B, -1)
            plus, minus = out[0], out[1]
        else:
            plus = out.view(P, B, -1)
            with inject(model, {name: (lambda out: out) for name in layers[1:]}):
                minus = objective.full(model.forward_from(first, hs[first], context)).unsqueeze(0)
        s = _scores(plus, minus, e, y, antithetic, form)
        return {name: _project(s, xis[name], variances[name]).to(hs[name].dtype) for name in layers}


def forward_passes(P: int, antithetic: bool) -> int:
    """Perturbed forward passes per example and layer (antithetic pairs cost two)."""
    return 2 * P if antithetic else P + 1
