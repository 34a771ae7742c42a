"""The perturbation engine: named-layer taps, noise-correlation estimates and manifold
estimators."""
