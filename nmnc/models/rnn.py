"""Recurrent networks: a rate RNN (``rnn``, Elman or leaky continuous-time) and a GRU (``gru``).

Input sequences (B, T, n_in) give logits at every step (B, T, C). The model is a
:class:`~nmnc.models._base.StagedNet` of two stages: the recurrent layer ``rnn`` (input and
recurrent weights; its output, the hidden state at every step (B, T, n), is the hidden layer that
rules perturb and analyses record) and the linear read-out ``readout`` applied at every step.

``rnn``: ``h_t = (1 - alpha) h_{t-1} + alpha phi(W_in x_t + W_rec h_{t-1} + b)`` with h_0 = 0;
alpha = dt / tau = 1 is the Elman network, alpha < 1 the leaky rate network neuroscientists fit
to cortex. ``gru``: torch's GRU cell. Noise rules add their perturbation to ``h_t`` after the
update, so it also reaches every later step (credit through time).

Locality: with ``local=True`` each step reads ``h_{t-1}`` detached, so the graph of ``h_t`` reaches
the weights only through step t itself; backpropagating per-step activity gradients
``g_t = dL/dh_t`` (total derivatives, through time) into it gives ``sum_t g_t dh_t/dW``, which is
BPTT's weight gradient when g_t is exact (tests/test_recurrent.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NmncError, UnknownNameError
from . import MODELS
from ._base import StagedNet, scaled

NONLINEARITIES = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softplus": nn.functional.softplus,
    "linear": lambda a: a,  # a linear RNN: its gradients have a closed form (tests)
}


class RecurrentLayer(nn.Module):
    """The hidden state over time: ``forward(x)`` maps (B, T, n_in) to (B, T, n)."""

    def __init__(self, inputs: int, hidden: int, cell: str, nonlinearity: str, alpha: float):
        super().__init__()
        self.cell, self.hidden, self.alpha = cell, hidden, alpha
        if cell == "rnn":
            self.input = nn.Linear(inputs, hidden)
            self.recurrent = nn.Linear(hidden, hidden, bias=False)
            self.phi = NONLINEARITIES[nonlinearity]
        else:
            self.gru = nn.GRUCell(inputs, hidden)

    def drive(self, x: torch.Tensor) -> torch.Tensor | None:
        """The input's contribution at every step, computed once for all steps (rnn cell)."""
        return self.input(x) if self.cell == "rnn" else None

    def update(self, x_t, drive_t, h: torch.Tensor) -> torch.Tensor:
        """One step: ``h_t`` from the input (or its drive) at t and ``h_{t-1}``."""
        if self.cell == "rnn":
            new = self.phi(drive_t + self.recurrent(h))
            return new if self.alpha == 1 else (1 - self.alpha) * h + self.alpha * new
        return self.gru(x_t, h)

    def forward(
        self,
        x: torch.Tensor,
        noise: torch.Tensor | None = None,
        local: bool = False,
        h0: torch.Tensor | None = None,
        start: int = 0,
        drive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """States (N, T - start, n) for steps start..T-1 of inputs ``x`` (N, T, n_in).

        ``noise`` (N, T - start, n) is added to each state as it is made (and so reaches every
        later step); ``h0`` is the state before step ``start`` (zeros by default); ``local``
        detaches the previous state at every step; ``drive`` is :meth:`drive` of ``x`` when
        already known."""
        N, T = x.shape[0], x.shape[1]
        if drive is None:
            drive = self.drive(x[:, start:])
        else:
            drive = drive[:, start:]
        h = x.new_zeros(N, self.hidden) if h0 is None else h0
        states = []
        for i, t in enumerate(range(start, T)):
            prev = h.detach() if local else h
            h = self.update(x[:, t], None if drive is None else drive[:, i], prev)
            if noise is not None:
                h = h + noise[:, i]
            states.append(h)
        return torch.stack(states, 1)


class RecurrentNet(StagedNet):
    """A recurrent layer and a per-step read-out; activities are (B, T, n), logits (B, T, C)."""

    recurrent = True

    def __init__(self, layer: RecurrentLayer, classes: int, inputs: int):
        super().__init__([("rnn", layer), ("readout", nn.Linear(layer.hidden, classes))], 0)
        self.inputs = inputs

    def walk(self, x: torch.Tensor, detach_inputs: bool = False):
        """The hidden states and the logits; with ``detach_inputs`` every stage's graph reaches
        only its own weights, through time as well (each step reads ``h_{t-1}`` detached)."""
        states = self.rnn(x.detach() if detach_inputs else x, local=detach_inputs)
        logits = self.readout(states.detach() if detach_inputs else states)
        return {"rnn": states}, logits

    def rollout(
        self,
        x: torch.Tensor,
        noise: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        start: int = 0,
        drive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (N, T - start, C) of a rollout with ``noise`` added to the hidden states (see
        :meth:`RecurrentLayer.forward`)."""
        return self.readout(self.rnn(x, noise=noise, h0=h0, start=start, drive=drive))

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-step shape of the hidden state: activities carry a time axis, (B, T, n)."""
        return {"rnn": (self.rnn.hidden,)}

    def example_input(self, batch: int = 2, steps: int = 5, seed: int = 0) -> torch.Tensor:
        """A random input sequence (batch, steps, n_in), for shape checks and tests."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, steps, self.inputs, generator=g)


@dataclass(frozen=True)
class RNNSettings:
    """Settings of ``rnn``."""

    hidden: int = 128  # hidden units at width 1
    width: float = 1.0  # multiplies the hidden units
    nonlinearity: str = "tanh"  # 'tanh', 'relu', 'softplus' or 'linear'
    alpha: float = 1.0  # leak dt/tau: 1 = Elman network, < 1 = leaky (continuous-time) rate RNN
    gain: float = 1.0  # recurrent weights start as N(0, gain^2 / n)
    inputs: int = 0  # input units; 0 = follow the dataset
    num_classes: int = 10  # follows the dataset


@dataclass(frozen=True)
class GRUSettings:
    """Settings of ``gru``."""

    hidden: int = 128
    width: float = 1.0
    inputs: int = 0
    num_classes: int = 10


def _check(s) -> None:
    if s.hidden < 1:
        raise NmncError(f"hidden must be at least 1, got {s.hidden}")
    if s.inputs < 0:
        raise NmncError(f"inputs must be 0 (follow the dataset) or positive, got {s.inputs}")


@MODELS.register(
    "rnn",
    RNNSettings,
    help="rate RNN (Elman, or leaky with alpha < 1), 128 units x width, read-out at every step",
    kind="recurrent",
)
def rnn(s: RNNSettings) -> RecurrentNet:
    """A vanilla or leaky rate RNN."""
    _check(s)
    if s.nonlinearity not in NONLINEARITIES:
        raise UnknownNameError("nonlinearity", s.nonlinearity, NONLINEARITIES)
    if not 0 < s.alpha <= 1:
        raise NmncError(f"alpha (dt/tau) must be in (0, 1], got {s.alpha}")
    if not s.gain >= 0:
        raise NmncError(f"gain must be 0 or positive, got {s.gain}")
    n, inputs = scaled(s.hidden, s.width), s.inputs or 1
    layer = RecurrentLayer(inputs, n, "rnn", s.nonlinearity, s.alpha)
    nn.init.normal_(layer.recurrent.weight, 0.0, s.gain / n**0.5)
    return RecurrentNet(layer, s.num_classes, inputs)


@MODELS.register(
    "gru", GRUSettings, help="GRU, 128 units x width, read-out at every step", kind="recurrent"
)
def gru(s: GRUSettings) -> RecurrentNet:
    """A gated recurrent unit network."""
    _check(s)
    n, inputs = scaled(s.hidden, s.width), s.inputs or 1
    return RecurrentNet(RecurrentLayer(inputs, n, "gru", "tanh", 1.0), s.num_classes, inputs)
