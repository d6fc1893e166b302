"""Ahead-of-time plans of a run: TPU targets, compiled memory and time estimates."""
