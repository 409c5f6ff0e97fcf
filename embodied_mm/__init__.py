"""embodied-mm: turn multimodal LLMs into robot controllers.

Architecture (MM-LLM survey, arXiv 2401.13601): modality encoder -> input projector ->
LLM backbone -> output projector -> actions or plans. See DESIGN.md.
"""

__version__ = "0.1.0"
