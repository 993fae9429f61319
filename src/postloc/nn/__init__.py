"""The torch machinery every neural model fits with: the epoch trainer, its settings and checkpoints.

It sits below :mod:`postloc.models`, knows nothing about any model (a model hands it a network
and its encoded posts), and nothing about run folders, TOML files or reports: those belong to
:mod:`postloc.training`, the layer above the models.
"""
