"""Baat."""
