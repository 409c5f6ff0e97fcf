"""Viewers for control runs and datasets (Rerun: :mod:`embodied_mm.viz.rerun_log`)."""
