"""Cost of a noise-correlation step against the forward passes it must run.

    python -m nmnc.bench cost [--model cnn] [--P 16] [--batch-size 128]

Forward passes a layerwise VNC/NMNC step needs: one clean pass, plus 2P perturbed copies of the
batch through the stages above each perturbed layer. The ratio step / forward shows the overhead of
noise drawing, manifold upkeep and local updates.
"""
from __future__ import annotations

import resource
import time

import torch

from ..models import build_model
from ..engine.perturb import frozen_norm
from ..rules import build_rule


def add_parser(sub):
    c = sub.add_parser("cost", help="noise-rule step time against its forward passes and BP")
    c.add_argument("--model", default="cnn")
    c.add_argument("--P", type=int, default=16)
    c.add_argument("--batch-size", type=int, default=128)
    c.add_argument("--repeats", type=int, default=3)
    c.set_defaults(func=run)


def _time(fn, repeats):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def run(args):
    torch.manual_seed(0)
    model = build_model(args.model)
    B, P = args.batch_size, args.P
    x, y = torch.randn(B, 3, model.input_size, model.input_size), torch.randint(0, 10, (B,))

    def forwards():
        with torch.no_grad(), frozen_norm(model):
            h = x
            acts = {}
            for name in model.hidden_layers:
                h = model.stage(name)(h)
                acts[name] = h
            model.stage(model.stage_names[-1])(h)
            for name, a in acts.items():
                copies = a.unsqueeze(0).expand(2 * P, *a.shape).reshape(-1, *a.shape[1:])
                for chunk in copies.split(4096):
                    model.forward_from(name, chunk)

    def bp():
        model.zero_grad()
        build_rule("bp", model).step(x, y, None)

    t_fwd = _time(forwards, args.repeats)
    t_bp = _time(bp, args.repeats)
    rows = [("forward passes only", t_fwd, 1.0, t_fwd / t_bp)]
    for rule_name in ("vnc", "nmnc"):
        rule = build_rule(rule_name, model, P=P)
        gen = torch.Generator().manual_seed(0)

        def step():
            model.zero_grad()
            rule.step(x, y, gen)

        t = _time(step, args.repeats)
        rows.append((f"{rule_name} step", t, t / t_fwd, t / t_bp))
    rows.append(("bp step", t_bp, t_bp / t_fwd, 1.0))
    print(f"model={args.model} P={P} batch={B} threads={torch.get_num_threads()}")
    print(f"{'what':22s} {'seconds':>8s} {'x forwards':>10s} {'x bp step':>10s}")
    for what, t, rf, rb in rows:
        print(f"{what:22s} {t:8.3f} {rf:10.2f} {rb:10.1f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
