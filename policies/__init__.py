"""Named policy recipes (``vla-discrete``, ``vla-chunk``, ``vla-flow``, ...), installed as
``embodied_mm.policies``."""
