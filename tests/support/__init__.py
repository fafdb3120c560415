"""Shared test helpers: a real server process, registered devices, database URLs."""
