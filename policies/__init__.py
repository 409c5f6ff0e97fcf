"""Named policy recipes (``vla-discrete``, ``vla-chunk``, ``vla-flow``, ...), installed as
``embodied_mm.policies``."""

from embodied_mm.policies.recipes import RECIPES, make_policy, recipe_config

__all__ = ["RECIPES", "make_policy", "recipe_config"]
