"""Errors a holdcast run raises on purpose, each naming what is wrong and where.

Validation, policy and training errors live beside the code that raises them
(:mod:`include.validation`, :mod:`include.decisions`, :mod:`training.errors`).
"""

from __future__ import annotations


class MissingSourceError(RuntimeError):
    """A source the run expects (a table, a file, an ingested interval) is absent or empty."""
