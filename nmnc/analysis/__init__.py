"""Analyses of trained networks: manifold dimension, Jacobian-manifold alignment, gradient quality."""
