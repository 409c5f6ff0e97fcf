"""Real-time chunking on the policy side: ``predict_chunk(obs, prefix=..., delay=d)``.

The chunk head trained with prefix conditioning returns the committed prefix exactly and
learns to continue it; guided flow lands within a stated tolerance of it without training;
heads that cannot continue a prefix say how to get one that can."""

import pytest
import torch

from embodied_mm.model.heads import HeadConfig, rtc_soft_mask
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    CHUNK,
    make_batch,
    obs_only,
    tiny_config,
    tiny_stats,
)


def _prefix(batch: int, rows: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)
    return low + (high - low) * (0.2 + 0.6 * torch.rand(batch, rows, ACTION_DIM, generator=g))


def test_soft_mask_matches_the_paper_by_hand():
    # d = 1, L = 3 (K = 5): 1; c = 2/3, 1/3; then 0
    w = rtc_soft_mask(torch.tensor([1]), torch.tensor([3]), 5)[0]
    e = torch.e
    expected = [
        1.0,
        (2 / 3) * (e ** (2 / 3) - 1) / (e - 1),
        (1 / 3) * (e ** (1 / 3) - 1) / (e - 1),
        0,
        0,
    ]
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float32))


def test_chunk_head_with_prefix_conditioning_returns_the_prefix_exactly():
    torch.manual_seed(0)
    cfg = tiny_config("chunk")
    cfg.head = HeadConfig(kind="chunk", rtc_max_delay=3)
    policy = VLAPolicy(cfg, tiny_stats(), device="cpu").eval()
    obs = obs_only(make_batch(2))
    prefix = _prefix(2, 3)
    delay = torch.tensor([2, 3])
    chunk = policy.predict_chunk(obs, prefix=prefix, delay=delay)  # (2, K, D)
    assert torch.equal(chunk[0, :2], prefix[0, :2])
    assert torch.equal(chunk[1, :3], prefix[1, :3])
    # the committed actions are the input of the continuation: another prefix, another tail
    other = policy.predict_chunk(obs, prefix=prefix.flip(-1), delay=delay)
    assert not torch.allclose(chunk[0, 2:], other[0, 2:])
    # delay 0 is the unconditioned chunk
    torch.testing.assert_close(
        policy.predict_chunk(obs, prefix=prefix, delay=0), policy.predict_chunk(obs)
    )
    with pytest.raises(ValueError, match="exceeds the 3 this head was trained for"):
        policy.predict_chunk(obs, prefix=_prefix(2, 4), delay=4)


def test_prefix_conditioning_learns_to_continue_the_prefix():
    """Chunks that repeat a random action, drawn afresh each step for the same observations:
    blind, the head can only predict the mean; given the prefix, it continues it."""
    torch.manual_seed(0)
    cfg = tiny_config("chunk")
    cfg.head = HeadConfig(kind="chunk", rtc_max_delay=2)
    policy = VLAPolicy(cfg, tiny_stats(), device="cpu").train()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    batch = make_batch(8, seed=3)
    obs = obs_only(batch)
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)

    def repeated() -> torch.Tensor:  # (B, K, D): one random action per sample, K times
        return (low + (high - low) * torch.rand(8, 1, ACTION_DIM)).expand(-1, CHUNK, -1)

    for _ in range(150):
        batch["action"] = repeated().clone()
        loss, _ = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    batch["action"] = repeated().clone()
    given = policy.predict_chunk(obs, prefix=batch["action"][:, :2], delay=2)
    blind = policy.predict_chunk(obs)
    err_given = (given[:, 2:] - batch["action"][:, 2:]).abs().mean()
    err_blind = (blind[:, 2:] - batch["action"][:, 2:]).abs().mean()
    assert err_given < 0.5 * err_blind, (err_given, err_blind)


def test_a_chunk_checkpoint_without_rtc_training_refuses_a_prefix_and_loads_as_before(tmp_path):
    torch.manual_seed(0)
    policy = VLAPolicy(tiny_config("chunk"), tiny_stats(), device="cpu").eval()
    assert policy.head.committed_in is None  # the layout of older checkpoints
    assert policy.rtc_max_delay == 0
    obs = obs_only(make_batch(1))
    with pytest.raises(ValueError, match="train a chunk head with --rtc-max-delay"):
        policy.predict_chunk(obs, prefix=_prefix(1, 2), delay=2)
    policy.save_pretrained(tmp_path / "p")
    again = VLAPolicy.from_pretrained(tmp_path / "p", device="cpu").eval()
    assert torch.equal(again.predict_chunk(obs), policy.predict_chunk(obs))


#: guided flow's frozen steps land within this much of the committed actions, as a fraction
#: of each action dimension's q01..q99 range (random tiny expert, 5 Euler steps, beta = 5)
FLOW_PREFIX_TOLERANCE = 0.05


def test_guided_flow_lands_near_the_prefix_and_changes_the_chunk():
    torch.manual_seed(0)
    policy = VLAPolicy(tiny_config("flow"), tiny_stats(), device="cpu").eval()
    obs = obs_only(make_batch(2))
    prefix = _prefix(2, 3)
    guided = policy.predict_chunk(obs, prefix=prefix, delay=torch.tensor([2, 2]))
    plain = policy.predict_chunk(obs)
    width = torch.tensor(ACTION_HIGH) - torch.tensor(ACTION_LOW)
    err = ((guided[:, :2] - prefix[:, :2]).abs() / width).max()
    err_plain = ((plain[:, :2] - prefix[:, :2]).abs() / width).max()
    assert err <= FLOW_PREFIX_TOLERANCE, err
    assert err_plain > 4 * FLOW_PREFIX_TOLERANCE  # unguided, the chunk is elsewhere
    assert not torch.allclose(guided[:, 3:], plain[:, 3:])  # guidance reaches the free tail
