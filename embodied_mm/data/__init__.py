"""Demonstration datasets in LeRobot format: write v3.0, read v3.0 and v2.1, load windows.

Modules: ``lerobot_format`` (layout, info.json), ``episode`` (in-memory episodes),
``writer`` (crash-safe v3.0 writer), ``reader`` (v3.0/v2.1 metadata and frames), ``video``
(PyAV encode/decode), ``stats`` (stats.json), ``torch_dataset`` (delta_timestamps windows),
``check``, ``robomimic``, ``show``, ``recorder``, ``bench``.
"""
