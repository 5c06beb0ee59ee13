"""Voxline control plane: the Quart service that serves the documented API."""
