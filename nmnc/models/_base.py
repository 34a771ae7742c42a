"""The shape every model shares: named stages in network order, each reading one or more earlier
activities (:class:`StagedNet`), width scaling and norm layers.

A stage is one weight layer (a convolution or a linear map, with its norm and nonlinearity); its
output is a hidden layer that the noise rules perturb and benchmarks record. A stage reads the
previous stage's output unless its model declares other sources: a residual join reads its own
branch and the block input (a skip connection). No stage holds two weight layers in series, so no
weight layer is trained through another (tests/test_locality.py checks every registered model).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import NmncError, UnknownNameError

INPUT = "input"  # the source name of the network input


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def norm_layer(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """BatchNorm (``bn``) or nothing (``none``) after a layer of ``channels``."""
    if norm == "bn":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if norm == "none":
        return nn.Identity()
    raise UnknownNameError("norm", norm, ["bn", "none"])


class StagedNet(nn.Module):
    """A feed-forward network as named stages run in order, with optional skip connections.

    ``sources`` maps a stage to the names it reads, in the order its module takes them: earlier
    stages or :data:`INPUT` (the network input). A stage not in ``sources`` reads the previous
    stage (the first reads the input). The output of every stage except the last is a hidden layer
    ``h_l`` (after its nonlinearity); the last stage is the read-out producing logits.
    ``forward_from(layer, h, context)`` runs the network above ``layer``: the ``f_{>l}`` of the
    noise-correlation rules.
    """

    input_size: int = 32

    def __init__(
        self,
        stages: list[tuple[str, nn.Module]],
        input_size: int,
        sources: dict[str, tuple[str, ...]] | None = None,
    ):
        super().__init__()
        for name, module in stages:
            self.add_module(name, module)
        self.stage_names = [name for name, _ in stages]
        self.input_size = input_size
        given = dict(sources or {})
        self.sources: dict[str, tuple[str, ...]] = {}
        for i, name in enumerate(self.stage_names):
            srcs = tuple(given.pop(name, (self.stage_names[i - 1] if i else INPUT,)))
            earlier = [INPUT, *self.stage_names[:i]]
            for s in srcs:
                if s not in earlier:
                    raise ValueError(f"stage '{name}' reads '{s}', which is not an earlier stage")
            self.sources[name] = srcs
        if given:
            raise ValueError(f"sources name unknown stages: {', '.join(given)}")

    @property
    def hidden_layers(self) -> list[str]:
        """Names of the hidden layers: every stage but the read-out, in network order."""
        return self.stage_names[:-1]

    def stage(self, name: str) -> nn.Module:
        """The module of stage ``name`` (unknown names list the stages)."""
        if name not in self.stage_names:
            raise UnknownNameError("layer", name, self.stage_names)
        return getattr(self, name)

    def stage_inputs(self, name: str, acts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """What stage ``name`` reads, taken from ``acts`` (hidden activities; the network input
        under :data:`INPUT`): call the stage as ``model.stage(name)(*inputs)``."""
        self.stage(name)  # validates the name
        missing = [s for s in self.sources[name] if s not in acts]
        if missing:
            raise NmncError(
                f"stage '{name}' reads {', '.join(missing)}, missing from the activities"
            )
        return tuple(acts[s] for s in self.sources[name])

    def _run(self, acts: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
        """Run stages ``names`` in order, reading and writing ``acts``; activities are dropped
        once no later stage of ``names`` reads them (the perturbed passes are many copies wide)."""
        last = {s: i for i, name in enumerate(names) for s in self.sources[name]}
        out = None
        for i, name in enumerate(names):
            out = getattr(self, name)(*(acts[s] for s in self.sources[name]))
            acts[name] = out  # after the module's hooks: edits by taps reach every reader
            for s in self.sources[name]:
                if last[s] == i:
                    del acts[s]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs ``x``."""
        return self._run({INPUT: x}, self.stage_names)

    def walk(
        self, x: torch.Tensor, detach_inputs: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every hidden layer's activity and the logits, stage by stage.

        With ``detach_inputs`` each stage receives every input detached, so the autograd graph of
        a stage's output reaches only that stage's own parameters (what local rules need).
        """
        acts = {INPUT: x}
        for name in self.stage_names:
            ins = [acts[s].detach() if detach_inputs else acts[s] for s in self.sources[name]]
            acts[name] = getattr(self, name)(*ins)
        del acts[INPUT]
        logits = acts.pop(self.stage_names[-1])
        return acts, logits

    def forward_from(
        self, layer: str, h: torch.Tensor, context: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits from the activity ``h`` of hidden layer ``layer`` (stages above it only).

        Stages above ``layer`` that read activities below it (skip connections) take them from
        ``context``: clean activities of the same B examples (as :meth:`walk` returns them; the
        input under :data:`INPUT`). ``h`` may hold m copies of the batch, flattened as (m, B) with
        B innermost; context is then repeated m times to match, and cast to ``h``'s dtype.
        """
        self.stage(layer)  # validates the name
        above = self.stage_names[self.stage_names.index(layer) + 1 :]
        acts = {layer: h}
        read = dict.fromkeys(s for name in above for s in self.sources[name])
        below = [s for s in read if s != layer and s not in above]
        missing = [s for s in below if context is None or s not in context]
        if missing:
            raise NmncError(
                f"forward_from('{layer}') needs context holding the clean activity of "
                f"{', '.join(missing)} (read above it through skip connections); pass "
                "context=the activities that model.walk(x) returns"
            )
        for s in below:
            t = context[s]
            if len(h) % len(t):
                raise NmncError(
                    f"forward_from('{layer}'): h has {len(h)} rows, not a multiple of the "
                    f"{len(t)} examples of context '{s}'"
                )
            m, t = len(h) // len(t), t.to(h.dtype)
            acts[s] = t if m == 1 else t.repeat(m, *[1] * (t.dim() - 1))
        return self._run(acts, above) if above else h

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-example shape of every hidden layer's activity, from one dummy forward."""
        x = torch.zeros(
            1, 3, self.input_size, self.input_size, device=next(self.parameters()).device
        )
        was_training = self.training
        self.eval()
        with torch.no_grad():
            outs, _ = self.walk(x)
        self.train(was_training)
        return {name: tuple(h.shape[1:]) for name, h in outs.items()}
