"""The training objective every rule shares: cross-entropy of the read-out against the targets.

Images: logits (B, C) and labels (B,). Sequences (recurrent models): logits (B, T, C) and per-step
targets (B, T), where -1 marks a step without a target; the loss is the mean over the steps that
have one, so every labelled step of the batch weighs the same. Accuracy of a sequence task is
measured on its scored steps (a NeuroGym trial's last step, the choice; sequential CIFAR-10's last
row), given by the data as a boolean mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -1  # a sequence step without a target


def full(t: torch.Tensor) -> torch.Tensor:
    """Half-precision (autocast) tensors in float32; float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _flat(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return logits.reshape(-1, logits.shape[-1]), y.reshape(-1)


def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the examples (images) or the labelled steps (sequences)."""
    z, t = _flat(full(logits), y)
    return F.cross_entropy(z, t, ignore_index=IGNORE)


def output_error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """e = dL/dlogits of :func:`loss`: (softmax - onehot) / labelled count, zero where y = -1."""
    z, t = _flat(full(logits), y)
    p = torch.softmax(z, dim=1)
    keep = t != IGNORE
    onehot = F.one_hot(t.clamp_min(0), p.shape[1]).to(p.dtype)
    e = (p - onehot) * keep.unsqueeze(1) / keep.sum().clamp_min(1)
    return e.view(logits.shape)


def shares(logits: torch.Tensor, y: torch.Tensor, labelled: int | None = None) -> torch.Tensor:
    """Each example's share of the batch loss for logits (N, B, ...) of N copies of a batch:
    (N, B), summing over B to :func:`loss` of each copy (the scalar-loss form of the rules).

    ``labelled``: the batch's count of labelled steps when ``y`` holds only some of its steps
    (the rest of a sequence after step t), so the shares stay those of the whole batch's loss."""
    N, B = logits.shape[:2]
    z = full(logits).reshape(N * B, -1, logits.shape[-1])  # (N*B, steps, C)
    t = y.reshape(B, -1).repeat(N, 1)
    per = F.cross_entropy(z.transpose(1, 2), t, ignore_index=IGNORE, reduction="none")
    count = int((y != IGNORE).sum()) if labelled is None else labelled
    return per.sum(1).view(N, B) / max(count, 1)


def tally(
    logits: torch.Tensor, y: torch.Tensor, scored: torch.Tensor | None = None
) -> tuple[float, int, int, int]:
    """(summed loss, loss terms, correct, scored) of one batch, for accuracy over many batches.

    Images score every example; sequences the steps ``scored`` marks (every labelled step if
    None)."""
    z, t = _flat(full(logits), y)
    keep = t != IGNORE
    total = F.cross_entropy(z, t, ignore_index=IGNORE, reduction="sum").item()
    mask = keep if scored is None else scored.reshape(-1) & keep
    right = (z.argmax(1) == t) & mask
    return total, int(keep.sum()), int(right.sum()), int(mask.sum())


def accuracy(logits: torch.Tensor, y: torch.Tensor, scored: torch.Tensor | None = None) -> float:
    """Fraction of scored examples or steps predicted right (NaN when none is scored)."""
    _, _, right, n = tally(logits, y, scored)
    return right / n if n else float("nan")
