import pytest
import torch

from embodied_mm.model.projectors import PROJECTORS, ProjectorConfig, build_projector


@pytest.mark.parametrize("kind", PROJECTORS.names())
@pytest.mark.parametrize("n_in", [5, 17])
def test_shapes_and_grads(kind, n_in):
    proj = build_projector(ProjectorConfig(kind=kind, num_queries=6, num_heads=2), 24, 32)
    x = torch.randn(3, n_in, 24, requires_grad=True)
    y = proj(x)
    assert y.shape == (3, proj.num_tokens(n_in), 32)
    y.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in proj.parameters())


def test_resampler_token_count_is_fixed():
    proj = build_projector(ProjectorConfig(kind="resampler", num_queries=6, num_heads=2), 24, 32)
    assert proj(torch.randn(2, 5, 24)).shape[1] == proj(torch.randn(2, 50, 24)).shape[1] == 6


def test_mlp_is_llava_two_layer_gelu():
    proj = build_projector(ProjectorConfig(kind="mlp"), 24, 32)
    kinds = [type(m).__name__ for m in proj.net]
    assert kinds == ["Linear", "GELU", "Linear"]


def test_unknown_projector_lists_known():
    with pytest.raises(ValueError, match="kind: expected one of linear, mlp, resampler"):
        build_projector(ProjectorConfig(kind="qformer"), 4, 4)


def test_resampler_heads_must_divide_width():
    with pytest.raises(ValueError, match="not divisible"):
        build_projector(ProjectorConfig(kind="resampler", num_heads=5), 4, 32)
