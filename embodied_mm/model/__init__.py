"""The MM-LLM policy stack: modality encoders → input projectors → LLM backbone → output
projectors (action heads, plan text), composed by :class:`~embodied_mm.model.modeling_vla.VLAPolicy`.

Each component kind lives in its own module with a string-keyed registry and a typed
dataclass config. Imports here stay light; torch/transformers load with the submodules.
"""
