"""Amortised feedback: a noise-correlation estimate of the layer Jacobian, averaged over steps.

Per-example estimates (``perturb.correlate``) use each example's own perturbations. The amortised
variant instead estimates the batch-average Jacobian ``J_batch = (1/PB) sum_{p,b} dy_pb xi_pb^T /
var`` (n_o x n), keeps a bias-corrected moving average ``J_bar`` over steps, and broadcasts
``g_hat_b = J_bar^T e_b`` to every example: a feedback matrix learned from noise, as in the same
lab's reimplementation. It trades per-example accuracy (ReLU gating differs between examples)
for far lower variance.
"""

from __future__ import annotations

import torch

from .perturb import _batched


def batch_jacobian(f, h: torch.Tensor, xi: torch.Tensor, var: float, max_batch: int = 4096):
    """Antithetic noise-correlation estimate of the batch-mean Jacobian (n_o, n) of ``f`` at
    ``h`` (B, *shape) from perturbations ``xi`` (P, B, *shape) of covariance ``var`` x projector."""
    P, B = xi.shape[:2]
    with torch.no_grad():
        hp = torch.cat([h.unsqueeze(0) + xi, h.unsqueeze(0) - xi]).flatten(0, 1)
        out = _batched(f, hp, max_batch, B).view(2, P, B, -1)
        dy = (out[0] - out[1]) / 2  # (P, B, n_o)
        return torch.einsum("pbo,pbn->on", dy.float(), xi.flatten(2).float()) / (P * B * var)


class AmortisedFeedback:
    """A bias-corrected exponential moving average of one layer's Jacobian estimates."""

    def __init__(self, decay: float):
        self.decay = decay
        self.J: torch.Tensor | None = None  # raw moving average (n_o, n)
        self.updates = 0

    def update(self, J_batch: torch.Tensor) -> torch.Tensor:
        """Fold in this step's estimate; returns the bias-corrected average."""
        if self.J is None or self.J.shape != J_batch.shape:
            self.J, self.updates = torch.zeros_like(J_batch), 0
        self.J = self.J.to(J_batch.device)  # resumed checkpoints load onto the CPU
        self.J.mul_(self.decay).add_(J_batch, alpha=1 - self.decay)
        self.updates += 1
        return self.average()

    def average(self) -> torch.Tensor:
        """The bias-corrected average (n_o, n) of the estimates folded in so far."""
        return self.J / (1 - self.decay**self.updates)

    def state_dict(self) -> dict:
        """The average and its update count (plain tensors)."""
        return {"J": self.J, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.J, self.updates = state.get("J"), int(state.get("updates", 0))
