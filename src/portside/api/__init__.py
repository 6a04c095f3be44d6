"""The Harbor-shaped management API under /api/v2.0 (paths, parameters and JSON names as Harbor's)."""
