"""Named-layer taps: forward hooks on named modules, the one way to reach inside a network.

``record`` captures activities (analyses, benchmarks); ``inject`` replaces a layer's output
(noise rules perturbing all layers at once). Layer names are ``named_modules()`` names, so the
same names appear in training logs, analyses and benchmark results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import UnknownNameError


def resolve(model: nn.Module, layers: list[str]) -> dict[str, nn.Module]:
    """Named modules of ``model`` for ``layers``; unknown names list the hidden layers."""
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if name not in modules or name == "":
            hidden = getattr(model, "hidden_layers", [n for n in modules if n])
            raise UnknownNameError(
                "layer", name, hidden, "layer names are the model's hidden_layers"
            )
        out[name] = modules[name]
    return out


@contextmanager
def record(
    model: nn.Module, layers: list[str], detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Context manager yielding a dict that fills with each layer's latest output."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in resolve(model, layers).items():

        def hook(_m, _inp, out, name=name):
            store[name] = out.detach() if detach else out

        handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def inject(
    model: nn.Module, edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]
) -> Iterator[None]:
    """Context manager replacing each named layer's output ``h`` by ``edits[name](h)``."""
    handles = []
    for name, module in resolve(model, list(edits)).items():
        fn = edits[name]
        handles.append(module.register_forward_hook(lambda _m, _i, out, fn=fn: fn(out)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def activities(
    model: nn.Module, x: torch.Tensor, layers: list[str] | None = None, batch: int = 256
) -> dict[str, torch.Tensor]:
    """Every named layer's activity for inputs ``x`` (N, ...), recorded by taps, in batches."""
    layers = list(layers or model.hidden_layers)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with record(model, layers) as store:
        for chunk in x.split(batch):
            model(chunk)
            for name in layers:
                parts[name].append(store[name])
    return {name: torch.cat(p) for name, p in parts.items()}
