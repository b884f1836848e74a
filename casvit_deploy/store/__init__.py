"""Artifacts on disk: their manifests (manifests.py), opening them with their format's
runner (runners.py) and describing them for `casvit info` (describe.py)."""
