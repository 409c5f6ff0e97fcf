"""Every action head on every backbone family: shapes, gradients, bounds, batch independence."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embodied_mm.model.heads import (
    HEADS,
    DiscreteHead,
    HeadConfig,
    extend_positions,
    suffix_positions,
)
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    CHUNK,
    FAMILIES,
    make_batch,
    obs_only,
    tiny_config,
    tiny_stats,
    without_dropout,
)

COMBOS = [(h, f) for h in HEADS.names() for f in FAMILIES]


def build(head: str, family: str, seed: int = 0) -> VLAPolicy:
    torch.manual_seed(seed)
    return VLAPolicy(tiny_config(head, family), stats=tiny_stats(), device="cpu")


def test_registry_covers_the_three_heads():
    assert HEADS.names() == ["chunk", "discrete", "flow"]


@pytest.mark.parametrize(("head", "family"), COMBOS)
def test_forward_backward_shapes(head, family):
    policy = build(head, family)
    batch = make_batch(3, plans=True)
    loss, metrics = policy.compute_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"loss", "plan_ce"} <= set(metrics)
    loss.backward()
    # Gradients reach every part: head, backbone, projector, towers, proprio, camera embedding.
    # (The discrete head owns no weights: its action tokens live in the backbone's vocab.)
    for part in ("head", "backbone", "projector", "vision", "proprio"):
        if not list(getattr(policy, part).parameters()):
            continue
        grads = [p.grad for p in getattr(policy, part).parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), part
    chunk = policy.predict_chunk(obs_only(batch))
    assert chunk.shape == (3, CHUNK, ACTION_DIM) and chunk.dtype == torch.float32


@pytest.mark.parametrize(("head", "family"), COMBOS)
def test_predict_chunk_within_action_bounds(head, family):
    policy = build(head, family).eval()
    # Push the head to extremes so clipping matters: scale its output layers up.
    with torch.no_grad():
        for p in policy.head.parameters():
            p.mul_(50.0)
    chunk = policy.predict_chunk(obs_only(make_batch(4, seed=1)))
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)
    assert (chunk >= low - 1e-5).all() and (chunk <= high + 1e-5).all()


@pytest.mark.parametrize(("head", "family"), COMBOS)
def test_batch_independence(head, family):
    """Sample 0's chunk is unchanged when the other samples (images, state, text length) change."""
    policy = build(head, family).eval()
    a = obs_only(make_batch(3, seed=0))
    b = obs_only(make_batch(3, seed=5))
    for key in a:
        if key == "task":
            b[key] = [a[key][0], "x", "a much longer instruction that pads sample zero on the left"]
        else:
            b[key][0] = a[key][0]
    out_a, out_b = policy.predict_chunk(a), policy.predict_chunk(b)
    # The backbone state the heads decode from: sample 0's is unchanged, the others' moved (so
    # the test is not vacuous even where a random discrete head emits one bin everywhere).
    with torch.inference_mode():
        last_a = policy.backbone(*policy.prefix_from_inputs(policy.preprocess(a))[:3])[:, -1]
        last_b = policy.backbone(*policy.prefix_from_inputs(policy.preprocess(b))[:3])[:, -1]
    assert not torch.allclose(last_a[1:], last_b[1:])
    torch.testing.assert_close(last_a[0], last_b[0], atol=1e-5, rtol=1e-5)
    if head != "discrete":
        assert not torch.allclose(out_a[1:], out_b[1:])
    torch.testing.assert_close(out_a[0], out_b[0], atol=1e-5, rtol=1e-5)
    alone = policy.predict_chunk({k: v[:1] for k, v in a.items()})
    torch.testing.assert_close(alone[0], out_a[0], atol=1e-5, rtol=1e-5)


def test_action_is_pad_masks_the_loss():
    policy = build("chunk", "qwen2")
    batch = make_batch(2)
    batch["action_is_pad"] = torch.zeros(2, CHUNK, dtype=torch.bool)
    batch["action_is_pad"][:, -2:] = True
    loss_a, _ = policy.compute_loss(batch)
    batch["action"][:, -2:] += 100.0  # padded steps: any value, same loss
    loss_b, _ = policy.compute_loss(batch)
    torch.testing.assert_close(loss_a, loss_b)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=CHUNK * ACTION_DIM, max_size=CHUNK * ACTION_DIM))
def test_discrete_round_trip_within_half_a_bin(values):
    head = DiscreteHead(HeadConfig(kind="discrete"), 8, CHUNK, ACTION_DIM)
    actions = torch.tensor(values, dtype=torch.float32).view(1, CHUNK, ACTION_DIM)
    bins = head.tokenize(actions)
    assert bins.shape == (1, CHUNK * ACTION_DIM)
    assert bins.min() >= 0 and bins.max() < 256
    half_bin = 1.0 / 256  # bins are 2/256 wide over [-1, 1]
    assert (head.detokenize(bins) - actions).abs().max() <= half_bin + 1e-6


def test_discrete_tokens_live_after_the_text_vocab():
    policy = build("discrete", "llama")
    offset = policy.config.backbone.extra_token_offset
    assert offset == len(policy.tokenizer)
    assert policy.backbone.vocab_size == offset + 256
    assert policy.head.token_offset == offset


def _loss_and_grads(policy: VLAPolicy, batch: dict) -> tuple[float, dict[str, torch.Tensor]]:
    policy.zero_grad()
    with torch.random.fork_rng():
        torch.manual_seed(7)
        loss, _ = policy.compute_loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return loss.item(), grads


@pytest.mark.parametrize(("head", "family"), COMBOS)
def test_the_shared_prefix_trains_as_the_whole_sequence_does(head, family):
    """The prefix runs once and the action and plan suffixes continue its KV cache; the
    loss and every gradient match running each whole sequence (the path gradient
    checkpointing takes, which cannot keep a cache in training)."""
    policy = without_dropout(build(head, family).train())
    batch = make_batch(4, seed=2, plans=True)  # instructions of different lengths: padding
    shared_loss, shared = _loss_and_grads(policy, batch)
    policy.backbone.share_prefix = False
    whole_loss, whole = _loss_and_grads(policy, batch)
    assert shared_loss == pytest.approx(whole_loss, rel=1e-5, abs=1e-6)
    assert shared.keys() == whole.keys() and shared
    for name, grad in shared.items():
        torch.testing.assert_close(grad, whole[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_suffix_on_the_encoded_prefix_sees_what_inference_sees(family):
    """Training continues the encoded prefix; inference (``extend_positions``) runs the whole
    sequence: a padded prefix gives the suffix the same hidden states either way."""
    backbone = build("chunk", family).backbone.eval()
    g = torch.Generator().manual_seed(0)
    prefix = torch.randn(3, 6, backbone.hidden_size, generator=g)  # (B, P, H)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1], [1, 0, 1, 1, 1, 1]])
    pos = (mask.cumsum(1) - 1).clamp_min(0)  # (B, P) padding takes no position
    suffix = torch.randn(3, 4, backbone.hidden_size, generator=g)  # (B, T, H)
    full_mask, full_pos = extend_positions(mask, pos, 4)
    expected = backbone(torch.cat([prefix, suffix], 1), full_mask, full_pos)[:, -4:]
    encoded = backbone.encode_prefix(prefix, mask, pos)
    hidden = backbone.continue_prefix(encoded, suffix, *suffix_positions(encoded, 4))
    torch.testing.assert_close(hidden, expected, rtol=1e-4, atol=1e-5)
