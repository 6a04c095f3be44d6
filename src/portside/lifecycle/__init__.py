"""Keeping registries in check: garbage collection, retention, immutability and quotas."""
