"""Neural predictivity benchmarks: cross-validated PLS from a layer's features to every recorded
neuron, scored as Brain-Score scores its neural benchmarks.

The stimuli of every session are split into two seeded halves. Within each half, Brain-Score's
``pls`` metric with k-fold cross-validation gives each fold's Pearson r per neuron, so every image
is tested once; the session's raw score ``r`` is the mean over folds (and halves) of the median
over neurons. A session with single trials has a ceiling ``c``: the median over neurons of the
Spearman-Brown corrected split-half reliability. The headline is Brain-Score's explained
variance ``r**2 / c`` averaged over sessions and halves (normalisation ``r2/ceiling``), or ``r**2``
for sessions without single trials (``r2``); one benchmark never mixes the two. Each half's value
is exactly what Brain-Score's NeuralBenchmark gives on that half (``timing brainscore-v4``).

Features wider than ``max_features`` are reduced by PCA fitted on held-out images (as Brain-Score
keeps 1,000 principal components fitted on ImageNet images; here CIFAR-10 test images by default).
The committed score is cross-fitted: the layer chosen on half A is scored on half B and the layer
chosen on B is scored on A, and the two are averaged, so every image counts once.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from nmnc.errors import DataError

from .base import ALL, SELECT, TEST, Benchmark, BenchmarkInfo, Row, pick
from .brainscore_adapter import PLS_COMPONENTS
from .stimuli import Stimuli

N_BOOT = 1000  # bootstrap draws of neurons and trials for the intervals


def split_half_reliability(trials: np.ndarray, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per neuron, the mean over ``n_splits``
    random splits of each image's repeats; trials (neurons, images, repeats), NaN = missing.

    Brain-Score's internal consistency differs in two details: it splits the repetition indices
    the same way for every image, and takes the median over neurons per split before averaging
    splits."""
    return weighted_reliability(trials, np.ones((1, trials.shape[1])), n_splits, seed)[0]


def weighted_reliability(
    trials: np.ndarray, weights: np.ndarray, n_splits: int = 20, seed: int = 0
) -> np.ndarray:
    """:func:`split_half_reliability` on each resample of images (``weights``: (B, images)
    counts of each image in each draw), over the same splits of repeats: (B, neurons)."""
    from .stats import weighted_r

    rng = np.random.default_rng(seed)
    neurons, images, reps = trials.shape
    out = []
    for _ in range(n_splits):
        # shuffle repeats per image (NaNs spread over both halves)
        perm = np.argsort(rng.random((images, reps)), axis=1)
        shuffled = np.take_along_axis(trials, np.broadcast_to(perm, trials.shape), axis=2)
        with _quiet():
            first, second = np.nanmean(shuffled[..., ::2], 2), np.nanmean(shuffled[..., 1::2], 2)
        ok = ~(np.isnan(first) | np.isnan(second)).any(0)
        r = weighted_r(weights[:, ok], first[:, ok].T, second[:, ok].T)
        out.append(2 * r / (1 + r))
    with _quiet():
        return np.nanmean(out, 0)


@contextmanager
def _quiet():
    """NaN-aware reductions over all-NaN slices stay quiet (they give NaN, which is handled)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def session_r(fold_r: np.ndarray) -> float:
    """Brain-Score's aggregate of one session's (folds, neurons) r: mean over folds of the median
    over neurons."""
    with _quiet():
        return float(np.nanmean(np.nanmedian(fold_r, 1)))


def headline(r: np.ndarray, ceilings: np.ndarray) -> float:
    """The benchmark's score from per-session raw r and ceilings: the mean over sessions of
    ``r**2 / c``, or of ``r**2`` when no session has a ceiling (every ceiling NaN); a single NaN
    ceiling (a degenerate bootstrap draw) makes that value NaN, never unceiled."""
    r, c = np.asarray(r, np.float64), np.asarray(ceilings, np.float64)
    return np.mean(r**2, -1) if np.isnan(c).all() else np.mean(r**2 / c, -1)


class NeuralBenchmark(Benchmark):
    """PLS predictivity per session (Brain-Score's metric, k-fold), ceiled per session."""

    kind = "neural"

    def __init__(
        self,
        info: BenchmarkInfo,
        sessions: list[dict],
        splits: int = 5,
        max_features: int = 1000,
        pca_images: Stimuli | None = None,
        n_boot: int = N_BOOT,
    ):
        super().__init__(info)
        self.sessions, self.splits, self.max_features = sessions, splits, max_features
        self.pca_images, self.n_boot = pca_images, n_boot
        for s in sessions:
            n = len(s["responses"])
            if s.get("trials") is not None and s["trials"].shape[1] != n:
                raise DataError(
                    f"{info.id}: session {s['session']} has single trials for "
                    f"{s['trials'].shape[1]} images and responses for {n}; give both for the same "
                    "images"
                )
        has = [s.get("trials") is not None for s in sessions]
        if any(has) and not all(has):
            names = [s["session"] for s, h in zip(sessions, has) if not h]
            raise DataError(
                f"{info.id}: sessions {', '.join(names)} have no single trials (no ceiling) while "
                "others have; a benchmark is either ceiled in every session or in none: score "
                "them as two benchmarks"
            )
        self.normalisation = "r2/ceiling" if all(has) and has else "r2"
        self._reliability: dict[str, np.ndarray] = {}
        self._draws = None

    def sets(self) -> list[tuple[str, Stimuli]]:
        return [(s["session"], s["stimuli"]) for s in self.sessions]

    def extract_options(self) -> dict:
        if not self.max_features:
            return {}
        return {"max_features": self.max_features, "basis_images": self.pca_images}

    @property
    def n_stimuli(self) -> int:
        return sum(len(s["stimuli"]) for s in self.sessions)

    @property
    def settings(self) -> dict:
        """What defines the score besides the data (recorded with every row)."""
        return {
            "splits": self.splits,
            "cv": "kfold",
            "pls_components": PLS_COMPONENTS,
            "max_features": self.max_features,
            "pca_images": None if self.pca_images is None else self.pca_images.name,
            "committed": "cross-fit halves",
            "normalisation": self.normalisation,
        }

    def data_arrays(self) -> list[np.ndarray]:
        out = [s["responses"] for s in self.sessions]
        return out + [s["trials"] for s in self.sessions if s.get("trials") is not None]

    def reliability(self, s: dict) -> np.ndarray | None:
        """Per-neuron split-half reliability of a session with single trials (None without)."""
        if s.get("trials") is None:
            return None
        if s["session"] not in self._reliability:
            self._reliability[s["session"]] = split_half_reliability(s["trials"])
        return self._reliability[s["session"]]

    def ceilings(self) -> np.ndarray:
        """Per-session ceiling (NaN where a session has no single trials)."""
        out = []
        for s in self.sessions:
            rel = self.reliability(s)
            with _quiet():
                out.append(np.nan if rel is None else float(np.nanmedian(rel)))
        return np.array(out)

    def ceiling(self) -> float | None:
        """The mean of the per-session ceilings (None when no session has single trials)."""
        c = self.ceilings()
        return float(np.mean(c)) if np.isfinite(c).all() and len(c) else None

    def by_layer(self, features):
        layers = list(next(iter(features.values())))
        return {layer: {s: features[s][layer] for s in features} for layer in layers}

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, feats: dict, half: int | None) -> list[dict]:
        """Per session on all stimuli or one half: fold r (folds, neurons) and each fold's
        held-out (positions into the session's stimuli, predictions, responses)."""
        from .brainscore_adapter import pls_folds

        out = []
        for s in self.sessions:
            X, Y = np.asarray(feats[s["session"]]), s["responses"]
            idx = pick(len(Y), half)
            ids = [s["stimuli"].ids[i] for i in idx]
            fold_r, kept = pls_folds(X[idx], Y[idx], ids, self.splits)
            folds = [(idx[pos], pred, resp) for pos, pred, resp in kept]
            out.append({"fold_r": fold_r, "folds": folds, "n": len(idx)})
        return out

    def value(self, fits: list[list[dict]]) -> tuple[np.ndarray, float]:
        """Per-session raw r (averaged over the fits: the halves) and the headline: Brain-Score's
        score of each fit, averaged over the fits."""
        n = len(self.sessions)
        r = np.array([[session_r(f[i]["fold_r"]) for i in range(n)] for f in fits])
        return r.mean(0), float(np.mean(headline(r, self.ceilings())))

    def draws(self) -> list[dict]:
        """Per session, the bootstrap draws every row shares (computed once per benchmark):
        images and neurons resampled with replacement together, ``weights`` (B, images) counting
        each image's draws and ``neurons`` (B, neurons), and the ceiling of each draw (B,): the
        median over the drawn neurons of their split-half reliability over the drawn images (NaN
        without single trials)."""
        if self._draws is None:
            from .stats import counts

            rng = np.random.default_rng(0)
            out = []
            for s in self.sessions:
                n_img, n = s["responses"].shape
                weights = counts(rng.integers(0, n_img, (self.n_boot, n_img)), n_img)
                neurons = rng.integers(0, n, (self.n_boot, n))
                c = np.full(self.n_boot, np.nan)
                if s.get("trials") is not None:
                    rel = weighted_reliability(s["trials"], weights)  # (B, neurons)
                    with _quiet():
                        c = np.nanmedian(np.take_along_axis(rel, neurons, 1), 1)
                out.append({"weights": weights, "neurons": neurons, "ceiling": c})
            self._draws = out
        return self._draws

    def interval(self, fits: list[list[dict]]) -> tuple[tuple, tuple]:
        """95% intervals of the raw r (mean over sessions) and of the headline over the shared
        :meth:`draws`: each fold's held-out predictions correlated again on the drawn images, the
        median taken over the drawn neurons, the ceiling of the same draw (so its uncertainty is
        in the interval)."""
        from .stats import weighted_r

        draws = self.draws()
        c = np.stack([d["ceiling"] for d in draws], 1)  # (B, sessions)
        raws, heads = [], []
        for f in fits:
            r = []
            for i, d in enumerate(draws):
                folds = []
                for pos, pred, resp in f[i]["folds"]:
                    rf = weighted_r(d["weights"][:, pos], pred, resp)  # (B, neurons)
                    with _quiet():
                        folds.append(np.nanmedian(np.take_along_axis(rf, d["neurons"], 1), 1))
                with _quiet():
                    r.append(np.nanmean(folds, 0))
            r = np.stack(r, 1)  # (B, sessions)
            raws.append(r.mean(1))
            heads.append(headline(r, c))
        with _quiet():
            raw_ci = tuple(np.nanpercentile(np.mean(raws, 0), [2.5, 97.5]))
            head_ci = tuple(np.nanpercentile(np.mean(heads, 0), [2.5, 97.5]))
        return raw_ci, head_ci

    def row(self, layer: str, fits: list[list[dict]], committed: bool = False) -> Row:
        """The row of one layer from its fits (one fit, or the two cross-fitted halves)."""
        from .artefacts import neural_material

        r, score = self.value(fits)
        (lo, hi), (slo, shi) = self.interval(fits)
        per_session = {
            s["session"]: {"r": float(r[i]), "ceiling": _num(c)}
            for i, (s, c) in enumerate(zip(self.sessions, self.ceilings()))
        }
        extra = {
            "neurons": int(sum(f["fold_r"].shape[1] for f in fits[0])),
            "sessions": per_session,
            # per fit (half) and session: the raw r whose r**2 / c Brain-Score would report
            "r_by_half": [[session_r(x["fold_r"]) for x in f] for f in fits],
            **self.settings,
        }
        material = None
        if committed:
            blocks = [[f[i] for f in fits] for i in range(len(self.sessions))]
            material = neural_material(self.sessions, blocks, self.ceilings())
        n = sum(f["n"] for fit in fits for f in fit)
        ceiling = self.ceiling()
        units = {"session": [], "neuron": [], "r": [], "reliability": []}
        for i, s in enumerate(self.sessions):
            with _quiet():
                r_unit = np.nanmean(np.concatenate([f[i]["fold_r"] for f in fits]), 0)
            rel = self.reliability(s)
            units["session"] += [s["session"]] * len(r_unit)
            units["neuron"] += list(range(len(r_unit)))
            units["r"] += r_unit.tolist()
            units["reliability"] += [np.nan] * len(r_unit) if rel is None else rel.tolist()
        return Row(
            self.id,
            self.version,
            layer,
            committed,
            float(np.mean(r)),
            float(lo),
            float(hi),
            ceiling,
            n,
            extra,
            material,
            norm_score=score,
            norm_low=float(slo),
            norm_high=float(shi),
            normalisation=self.normalisation,
            units=units,
        )

    # ---- the Benchmark interface ---------------------------------------------------------
    def measure(self, feats, layer, half) -> Row:
        """All stimuli: each half cross-validated on its own, averaged (every image tested once,
        as in the committed score); one half: that half alone."""
        fits = (
            [self.fit(feats, SELECT), self.fit(feats, TEST)]
            if half is ALL
            else [self.fit(feats, half)]
        )
        return self.row(layer, fits, committed=half is not ALL)

    def selection_score(self, feats, layer) -> float:
        return self.value([self.fit(feats, SELECT)])[1]

    def score(self, features: dict[str, dict[str, np.ndarray]]) -> list[Row]:
        """A row per layer (its two halves, each cross-validated on its own, averaged), then the
        committed row, cross-fitted: the layer best on half A scored on half B and the layer best
        on B scored on A, averaged. The halves are fitted once and serve every row."""
        data = self.by_layer(features)
        halves = {
            layer: (self.fit(data[layer], SELECT), self.fit(data[layer], TEST)) for layer in data
        }
        rows = [self.row(layer, list(h)) for layer, h in halves.items()]
        on_a = {layer: self.value([h[0]])[1] for layer, h in halves.items()}
        on_b = {layer: self.value([h[1]])[1] for layer, h in halves.items()}
        best_a, best_b = max(on_a, key=on_a.get), max(on_b, key=on_b.get)
        layer = best_a if best_a == best_b else f"{best_a}+{best_b}"  # the row names both
        committed = self.row(layer, [halves[best_a][1], halves[best_b][0]], committed=True)
        committed.extra.update(
            selected_on="cross-fit: each half's layer chosen on the other half",
            # the one layer a model commits to V4: the best over both halves' selection scores
            commit=max(data, key=lambda layer: on_a[layer] + on_b[layer]),
            layer_a=best_a,
            layer_b=best_b,
            selection={layer: [on_a[layer], on_b[layer]] for layer in data},
        )
        return rows + [committed]

    def committed_material(self, features, layer: str) -> dict:
        """The material of a committed row (``layer``: one layer, or ``a+b`` when the halves
        chose layer a for half B and layer b for half A)."""
        data = self.by_layer(features)
        a, _, b = layer.partition("+")
        fits = [self.fit(data[a], TEST), self.fit(data[b or a], SELECT)]
        return self.row(layer, fits, committed=True).material


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)
