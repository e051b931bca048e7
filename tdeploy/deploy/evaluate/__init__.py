"""Measuring an artifact: ``validate`` (every backend against PyTorch, task metrics), ``bench`` (latency),
their reports, and Polygraphy-format inputs/outputs. Output comparison itself is :mod:`tdeploy.runtime.compare`."""
