"""Processor pipelines: named, saved steps between robot observations, model tensors and
robot actions (see :mod:`embodied_mm.processor.core`)."""
