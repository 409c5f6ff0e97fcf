"""Physics engines implementing :class:`embodied_mm.envs.engine.Engine`."""
