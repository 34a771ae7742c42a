"""Neural predictivity benchmarks: cross-validated regression from a layer's features to every
recorded neuron, scored as Brain-Score scores its neural benchmarks."""

from __future__ import annotations

import numpy as np

from .base import SELECT, TEST, Benchmark, BenchmarkInfo, Row, pick
from .stimuli import Stimuli


def split_half_reliability(trials: np.ndarray, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per neuron; trials (neurons, images,
    repeats), NaN = missing."""
    rng = np.random.default_rng(seed)
    neurons, images, reps = trials.shape
    out = np.zeros((n_splits, neurons))
    for s in range(n_splits):
        # shuffle repeats per image (NaNs spread over both halves)
        perm = np.argsort(rng.random((images, reps)), axis=1)
        shuffled = np.take_along_axis(trials, np.broadcast_to(perm, trials.shape), axis=2)
        first, second = np.nanmean(shuffled[..., ::2], 2), np.nanmean(shuffled[..., 1::2], 2)
        ok = ~(np.isnan(first) | np.isnan(second)).any(0)
        f = first[:, ok] - first[:, ok].mean(1, keepdims=True)
        g = second[:, ok] - second[:, ok].mean(1, keepdims=True)
        r = (f * g).sum(1) / np.sqrt((f**2).sum(1) * (g**2).sum(1))
        out[s] = 2 * r / (1 + r)
    return np.nanmean(out, 0)


class NeuralBenchmark(Benchmark):
    """Cross-validated PLS predictivity of each neuron, per session; neurons pooled (median)."""

    kind = "neural"

    # PLS (25 components) on 9 sessions x layers x splits is the slow part of scoring: features
    # wider than max_features get a seeded random projection, and splits are 90/10
    # cross-validation folds.
    def __init__(
        self, info: BenchmarkInfo, sessions: list[dict], splits: int = 3, max_features: int = 256
    ):
        super().__init__(info)
        self.sessions, self.splits, self.max_features = sessions, splits, max_features
        self._ceiling: float | None | bool = False  # False: not computed yet

    def sets(self) -> list[tuple[str, Stimuli]]:
        return [(s["session"], s["stimuli"]) for s in self.sessions]

    def extract_options(self) -> dict:
        return {"max_features": self.max_features}

    @property
    def n_stimuli(self) -> int:
        return sum(len(s["stimuli"]) for s in self.sessions)

    def ceiling(self) -> float | None:
        """Median split-half reliability over neurons of sessions with single trials (None
        without)."""
        if self._ceiling is False:
            rel = [
                split_half_reliability(s["trials"])
                for s in self.sessions
                if s.get("trials") is not None
            ]
            self._ceiling = float(np.nanmedian(np.concatenate(rel))) if rel else None
        return self._ceiling

    def by_layer(self, features):
        layers = list(next(iter(features.values())))
        return {layer: {s: features[s][layer] for s in features} for layer in layers}

    def _pooled(self, feats: dict, half: int | None, keep: bool = False) -> tuple:
        """Per-neuron predictivity pooled over sessions, the number of stimuli it used, and with
        ``keep`` each session's held-out predictions (name, stimuli, splits)."""
        from .artefacts import pls_heldout
        from .brainscore_adapter import pls_per_neuron

        per_neuron, n, kept = [], 0, []
        for s in self.sessions:
            X, Y = np.asarray(feats[s["session"]]), s["responses"]
            idx = pick(len(Y), half)
            ids = [s["stimuli"].ids[i] for i in idx]
            if keep:
                r, splits = pls_heldout(X[idx], Y[idx], ids, self.splits)
                kept.append((s["session"], len(idx), splits))
            else:
                r = pls_per_neuron(X[idx], Y[idx], ids, splits=self.splits)
            per_neuron.append(r)
            n += len(idx)
        return np.concatenate(per_neuron), n, kept

    def measure(self, feats, layer, half) -> Row:
        from .artefacts import neural_material

        r, n, kept = self._pooled(feats, half, keep=half == TEST)
        rng = np.random.default_rng(0)
        boots = [np.nanmedian(rng.choice(r, len(r))) for _ in range(1000)]  # bootstrap over neurons
        lo, hi = np.percentile(boots, [2.5, 97.5])
        extra = {
            "neurons": len(r),
            "sessions": len(self.sessions),
            "max_features": self.max_features,
            "splits": self.splits,
        }
        return Row(
            self.id,
            self.version,
            layer,
            False,
            float(np.nanmedian(r)),
            float(lo),
            float(hi),
            self.ceiling(),
            n,
            extra,
            neural_material(kept, self.ceiling()) if kept else None,
        )

    def selection_score(self, feats, layer) -> float:
        return float(np.nanmedian(self._pooled(feats, SELECT)[0]))
