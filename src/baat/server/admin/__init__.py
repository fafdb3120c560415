"""Operator tasks that run beside a server: backups."""
