"""What VNC and NMNC share: a clean stage-by-stage pass with detached stage inputs, noise
correlation for the activity gradients, and local weight updates.

Locality: each stage receives ``h_{l-1}.detach()``, so the autograd graph of a stage's output
reaches only that stage's own parameters. The update is the vector-Jacobian product of the
stage's output with respect to its own parameters, with the estimated activity gradient as the
output gradient; no gradient can flow between layers (tests/test_rules.py checks both facts).
The read-out stage uses the exact local error e = dL/dlogits.

Recurrent models (``model.recurrent``): the hidden state at every step is perturbed and correlated
with the change of the output over the rest of the sequence (``nmnc.engine.through_time``; setting
``time``: all steps at once or one step at a time); the update stays local, each step's estimated
gradient through that step's own weights (``RecurrentNet.walk(detach_inputs=True)``).
"""

from __future__ import annotations

import math

import torch

from ..engine.feedback import AmortisedFeedback, batch_jacobian
from ..engine.norm import capture_batch_stats, clean_stats
from ..engine.perturb import correlate, correlate_all, forward_passes
from ..engine.through_time import (
    TIMES,
    correlate_through_time,
    perturbations_per_draw,
    rollouts_per_draw,
)
from ..errors import NmncError, UnknownNameError
from ..models._base import INPUT
from ..objective import full, output_error
from ..objective import loss as objective_loss
from . import Rule, StepResult

FORMS = ("jacobian", "loss")
MODES = ("layerwise", "all")
FEEDBACK = ("example", "amortised")


def check_noise_settings(s) -> None:
    """Settings every noise rule shares, checked when they are made (before any work)."""
    if s.form not in FORMS:
        raise UnknownNameError("form", s.form, FORMS)
    if s.mode not in MODES:
        raise UnknownNameError("mode", s.mode, MODES)
    if s.P < 1:
        raise NmncError(f"P must be at least 1, got {s.P}")
    if not (math.isfinite(s.sigma) and s.sigma > 0):
        raise NmncError(f"sigma must be a positive number, got {s.sigma}")
    if s.max_batch < 1:
        raise NmncError(f"max_batch must be at least 1, got {s.max_batch}")
    if s.time not in TIMES:
        raise UnknownNameError("time", s.time, TIMES)
    if s.feedback not in FEEDBACK:
        raise UnknownNameError("feedback", s.feedback, FEEDBACK)
    if not 0 <= s.feedback_decay < 1:
        raise NmncError(f"feedback_decay must be in [0, 1), got {s.feedback_decay}")
    needs = ("layerwise", "jacobian", True)
    if s.feedback == "amortised" and (s.mode, s.form, s.antithetic) != needs:
        raise NmncError(
            "feedback=amortised needs mode=layerwise, form=jacobian and antithetic=true; "
            f"got mode={s.mode}, form={s.form}, antithetic={s.antithetic}"
        )


def check_recurrent(settings, recurrent: bool) -> None:
    """Settings a recurrent model cannot take (checked by the config before any work too)."""
    if recurrent and getattr(settings, "feedback", "example") == "amortised":
        raise NmncError(
            "feedback=amortised averages a feed-forward layer's Jacobian; recurrent models "
            "take feedback=example"
        )


def selected_layers(spec: str, hidden: list[str]) -> list[str]:
    """The hidden layers ``layers=all|a,b`` names, in network order (unknown names are errors)."""
    chosen = hidden if spec == "all" else [name.strip() for name in spec.split(",")]
    for name in chosen:
        if name not in hidden:
            raise UnknownNameError(
                "layer", name, hidden, "set layers=all or a comma-separated list of hidden layers"
            )
    return [name for name in hidden if name in chosen]


class NoiseRule(Rule):
    """Shared step of the noise-correlation rules; subclasses define the noise."""

    def __init__(self, model, settings):
        super().__init__(model, settings)
        self.layers = selected_layers(settings.layers, model.hidden_layers)
        self.shapes = model.layer_shapes()
        self.t = 0  # steps taken (manifold refresh clock)
        self.feedback = {name: AmortisedFeedback(settings.feedback_decay) for name in self.layers}
        self.stats: dict = {}  # BatchNorm statistics of the latest clean pass
        self.recurrent = getattr(model, "recurrent", False)
        check_recurrent(settings, self.recurrent)

    def rows(self, layer: str, h: torch.Tensor) -> torch.Tensor:
        """Activity (B, *shape) or, in a recurrent model, (B, T, *shape) as one row per example
        and step: what a manifold is estimated from (states pooled over time and examples)."""
        return h.reshape(-1, *self.shapes[layer])

    # subclasses define the perturbation distribution
    def noise(
        self, layer: str, h: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, float]:
        """Perturbations (P, B, *shape) for ``layer`` and their per-direction variance."""
        raise NotImplementedError

    def observe(self, acts: dict[str, torch.Tensor]) -> None:
        """Hook for rules that learn from clean activity (NMNC's manifold)."""

    def estimate(
        self,
        acts: dict,
        e: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator,
        context: dict | None = None,
    ) -> dict:
        """Estimated activity gradients g_hat_l (B, *shape) for every perturbed layer.

        ``context``: the clean pass's hidden activities, which stages above a layer may read
        through skip connections (see ``StagedNet.forward_from``)."""
        s, model = self.settings, self.model
        # Perturbed passes run in fp32 whatever the clean pass's autocast: a perturbation smaller
        # than half a bf16 step of its activity would vanish (NMNC's per-unit noise in conv1 is
        # about sigma * sqrt(k / n), far below bf16's resolution of typical activities).
        acts = {name: full(h) for name, h in acts.items()}
        e = full(e)
        with clean_stats(model, self.stats), torch.autocast(e.device.type, enabled=False):
            draws = {name: self.noise(name, acts[name], gen) for name in self.layers}
            xis = {n: d[0] for n, d in draws.items()}
            if self.recurrent:
                return {
                    name: correlate_through_time(
                        model,
                        context[INPUT],
                        acts[name],
                        xi,
                        var,
                        e,
                        y,
                        s.antithetic,
                        s.form,
                        s.time,
                        s.max_batch,
                    )
                    for name, (xi, var) in draws.items()
                }
            if s.feedback == "amortised":
                return {
                    name: self._amortised(name, acts[name], xi, var, e, context)
                    for name, (xi, var) in draws.items()
                }
            if s.mode == "all":
                variances = {n: d[1] for n, d in draws.items()}
                return correlate_all(
                    model, self.layers, acts, xis, variances, e, y, s.antithetic, s.form, context
                )
            return {
                name: correlate(
                    lambda z, name=name: model.forward_from(name, z, context),
                    acts[name],
                    xi,
                    var,
                    e,
                    y,
                    s.antithetic,
                    s.form,
                    s.max_batch,
                )
                for name, (xi, var) in draws.items()
            }

    def _amortised(self, name, h, xi, var, e, context=None):
        """g_hat = e J_bar: this step's batch Jacobian folded into the layer's running average."""
        f = lambda z: self.model.forward_from(name, z, context)  # noqa: E731
        J_batch = batch_jacobian(f, h, xi, var, self.settings.max_batch)
        # under torchrun: the global batch's Jacobian on every process, so the averages agree
        J = self.feedback[name].update(self.world.mean(J_batch))
        return (e @ J).view_as(h)

    def step(self, x, y, gen):
        with capture_batch_stats(self.model) as self.stats:
            # each stage's graph ends at its own input
            outs, logits = self.model.walk(x, detach_inputs=True)
        loss = objective_loss(logits, y)
        loss.backward()  # read-out: exact local error
        e = output_error(logits.detach(), y)  # (B, n_o), or (B, T, n_o) for sequences
        acts = {name: outs[name].detach() for name in self.layers}
        with torch.autocast(x.device.type, enabled=False):  # PCA/QR have no half-precision kernels
            self.observe(acts)
        context = {INPUT: x, **{n: h.detach() for n, h in outs.items()}}
        g_hat = self.estimate(acts, e, y, gen, context=context)
        torch.autograd.backward(
            [outs[n] for n in self.layers], [g_hat[n].to(outs[n].dtype) for n in self.layers]
        )
        self.t += 1
        s, P, B = self.settings, self.settings.P, len(y)
        per_layer = len(self.layers) if s.mode == "layerwise" or self.recurrent else 1
        draws = P * per_layer
        if self.recurrent:  # in full-sequence rollouts; one step at a time: T perturbations
            draws *= perturbations_per_draw(x.shape[1], s.time)
            passes = P * rollouts_per_draw(x.shape[1], s.time, s.antithetic) * per_layer
        else:
            passes = forward_passes(P, s.antithetic) * per_layer
        return StepResult(
            loss.detach(),
            logits.detach(),
            perturbations=draws * B,
            info={"forward_passes": passes * B},
        )

    def state_dict(self) -> dict:
        """The step clock and, with amortised feedback, each layer's averaged Jacobian."""
        out = {"t": self.t}
        if self.settings.feedback == "amortised":
            out["feedback"] = {n: f.state_dict() for n, f in self.feedback.items()}
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.t = int(state.get("t", 0))
        for name, fs in (state.get("feedback") or {}).items():
            if name in self.feedback:
                self.feedback[name].load_state_dict(fs)


def unit_sigma(sigma: float, n: int, match_k: int) -> float:
    """Per-unit std of VNC noise; with match_k > 0 the total energy equals NMNC's at k = match_k."""
    return sigma * math.sqrt(match_k / n) if match_k > 0 else sigma
