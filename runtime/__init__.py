"""Voxline's runtime: the LiveKit agent worker that runs each call (never imports `control`)."""
