"""Noise correlation through time: activity-gradient estimates for a recurrent network's hidden
state at every step, including the credit the state carries to later steps.

The hidden states ``h`` (B, T, n) of the clean rollout get perturbations ``xi`` (P, B, T, n) (each
step's noise is added to its state as it is made, so it reaches every later step), and the change
of the output over the rest of the sequence is correlated with them:

- ``time='all'``: every step perturbed at once, one perturbed rollout per draw (antithetic: two).
  The score of draw p is the first-order change of the loss over the whole sequence,
  ``s_p = sum_t dy_{p,t} . e_t``, and ``g_hat_t = (1/P) sum_p s_p xi_{p,t} / var``: unbiased for
  ``dL/dh_t`` (total derivative), with the noise of the other steps as extra variance (the
  effective dimension is T n for VNC, T k for NMNC).
- ``time='step'``: one step at a time: for each t, only ``h_t`` is perturbed and the rollout
  restarts from it, so ``g_hat_t`` correlates ``xi_{p,t}`` with the change of steps t..T-1 alone
  (dimension n or k, as for a feed-forward layer). It costs about (T + 1) / 2 rollouts per draw
  instead of one.

All draws run as one batch of rollouts (chunked to ``max_batch`` rows only to bound memory).
"""

from __future__ import annotations

import torch

from ..errors import UnknownNameError
from ..objective import IGNORE, full, shares
from .perturb import _project

TIMES = ("all", "step")


def _score(plus, minus, e, y, antithetic: bool, form: str, steps: slice) -> torch.Tensor:
    """(P, B) first-order (Jacobian form) or actual (loss form) change of the batch loss of each
    draw, over the output steps ``steps`` of ``plus``/``minus`` (P or 1, B, T', C)."""
    half = 2 if antithetic else 1
    if form == "jacobian":
        return ((plus - minus) * e[:, steps].unsqueeze(0)).sum((2, 3)) / half
    yy, labelled = y[:, steps], int((y != IGNORE).sum())  # shares of the whole batch's loss
    return (shares(plus, yy, labelled) - shares(minus.expand_as(plus), yy, labelled)) / half


def _rollouts(model, x, drive, copies: int, noise=None, h0=None, start: int = 0, max_batch=4096):
    """Logits (copies*B, T - start, C) of rollouts of ``copies`` copies of the batch ``x`` (B, T,
    n_in), B innermost: ``noise`` and ``h0`` hold copies*B rows (see ``RecurrentLayer.forward``)."""
    B = len(x)
    rows = max(B, max_batch // B * B)
    outs = []
    for i in range(0, copies * B, rows):
        m = min(rows, copies * B - i) // B
        part = lambda t: None if t is None else t[i : i + m * B]  # noqa: E731
        rep = lambda t: None if t is None else t.repeat(m, *[1] * (t.dim() - 1))  # noqa: E731
        outs.append(full(model.rollout(rep(x), part(noise), part(h0), start, rep(drive))))
    return torch.cat(outs)


def correlate_through_time(
    model,
    x: torch.Tensor,
    h: torch.Tensor,
    xi: torch.Tensor,
    var: float,
    e: torch.Tensor,
    y: torch.Tensor,
    antithetic: bool = True,
    form: str = "jacobian",
    time: str = "all",
    max_batch: int = 4096,
) -> torch.Tensor:
    """Estimated ``dL/dh_t`` for every step (B, T, n) of a recurrent model's hidden states ``h``
    for inputs ``x`` (B, T, n_in), from perturbations ``xi`` (P, B, T, n) of covariance ``var``
    times a projector; ``e`` (B, T, C) is the output error, ``y`` (B, T) the targets."""
    if time not in TIMES:
        raise UnknownNameError("time", time, TIMES)
    P, B, T = xi.shape[:3]
    signs = (lambda z: torch.cat([z, -z])) if antithetic else (lambda z: z)
    with torch.no_grad():
        drive = model.rnn.drive(x)
        if time == "all":
            noise = signs(xi).flatten(0, 1)  # (2P*B, T, n)
            out = _rollouts(model, x, drive, len(noise) // B, noise, max_batch=max_batch)
            out = out.view(2 if antithetic else 1, P, B, T, -1)
            minus = out[1] if antithetic else full(model.rollout(x, drive=drive)).unsqueeze(0)
            s = _score(out[0], minus, e, y, antithetic, form, slice(0, T))
            return _project(s, xi, var).to(h.dtype)
        g = torch.empty_like(h)
        if not antithetic:  # the baseline restarts from the same clean state, unperturbed
            signs = lambda z: torch.cat([z, torch.zeros_like(z[:1])])  # noqa: E731
        for t in range(T):
            start = h[:, t].unsqueeze(0) + signs(xi[:, :, t])  # (2P or P + 1, B, n) at step t
            first = full(model.readout(start)).unsqueeze(2)  # output at step t
            later = []
            if t + 1 < T:
                h0 = start.flatten(0, 1)
                rest = _rollouts(model, x, drive, len(start), None, h0, t + 1, max_batch)
                later = [rest.view(*start.shape[:2], T - t - 1, -1)]
            out = torch.cat([first, *later], 2)  # (2P or P, B, T - t, C)
            plus, minus = out[:P], out[P:]
            s = _score(plus, minus, e, y, antithetic, form, slice(t, T))
            g[:, t] = _project(s, xi[:, :, t], var)
        return g


def rollouts_per_draw(T: int, time: str, antithetic: bool) -> float:
    """Perturbed rollouts (in units of full-sequence rollouts) per example and draw."""
    per = 2 if antithetic else 1
    return per * ((T + 1) / 2 if time == "step" else 1)


def perturbations_per_draw(T: int, time: str) -> int:
    """Separately perturbed rollouts per draw: one (every step at once), or one per step."""
    return T if time == "step" else 1
