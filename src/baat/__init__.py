"""Baat: a private messenger."""

__version__ = "0.1.0"
