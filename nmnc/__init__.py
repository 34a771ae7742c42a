"""nmnc: train networks with backprop (BP), vanilla noise correlation (VNC) and neural manifold
noise correlation (NMNC), and analyse them. Importing registers models, rules and datasets and has
no other side effects."""
__version__ = "0.1.0"
