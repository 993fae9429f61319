"""Files postloc writes: atomic replacement of outputs, and the tensor/JSON halves of saved models.

The lowest layer beside :mod:`postloc.errors`: every other package writes through it, and it
imports nothing of postloc but the errors.
"""
