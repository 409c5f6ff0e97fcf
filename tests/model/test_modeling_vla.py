"""The policy API contract: inputs in either layout, history dims, clear errors, plans, reset."""

import threading
import time

import pytest
import torch

from embodied_mm.model.config_io import ConfigError
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.heads import PlanText
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.pretrained import shipped_tokenizer_dir
from embodied_mm.processor.tokenize import TokenizeTask
from tests.model.helpers import CHUNK, STATE_DIM, make_batch, obs_only, tiny_config, tiny_stats
from tests.preemption import pausing_inside


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return VLAPolicy(tiny_config("chunk", "qwen2"), stats=tiny_stats(), device="cpu").eval()


def test_contract_attributes(policy):
    cfg = policy.config
    assert (cfg.chunk_size, cfg.action_dim, cfg.state_dim) == (CHUNK, 3, 5)
    assert cfg.cameras == ["front", "wrist"] and cfg.image_size == 32


def test_defaults_match_our_sim():
    cfg = PolicyConfig()
    assert cfg.cameras == ["front", "wrist"] and cfg.image_size == 128
    assert (cfg.state_dim, cfg.action_dim, cfg.chunk_size) == (15, 7, 8)


def test_uint8_hwc_float_chw_and_history_agree(policy):
    obs = obs_only(make_batch(2, image_size=40))
    ref = policy.predict_chunk(obs)
    as_float = dict(obs)
    for cam in ("front", "wrist"):
        key = f"observation.images.{cam}"
        as_float[key] = obs[key].permute(0, 3, 1, 2).float() / 255.0
    torch.testing.assert_close(policy.predict_chunk(as_float), ref)
    history = dict(obs)
    for key in ("observation.images.front", "observation.images.wrist", "observation.state"):
        history[key] = torch.stack([torch.zeros_like(obs[key]), obs[key]], dim=1)  # (B, T, ...)
    torch.testing.assert_close(policy.predict_chunk(history), ref)


def test_numpy_inputs_are_accepted(policy):
    obs = obs_only(make_batch(2))
    as_np = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in obs.items()}
    torch.testing.assert_close(policy.predict_chunk(as_np), policy.predict_chunk(obs))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda o: o.pop("observation.images.wrist"), KeyError, "observation.images.wrist"),
        (lambda o: o.pop("observation.state"), KeyError, "observation.state"),
        (lambda o: o.update({"observation.state": torch.zeros(2, 4)}), ValueError, r"\(B, 5\)"),
        (lambda o: o.update({"task": ["only one"]}), ValueError, "list of 2 instructions"),
        (
            lambda o: o.update(
                {"observation.images.front": torch.zeros(3, 32, 32, 3, dtype=torch.uint8)}
            ),
            ValueError,
            "has batch 3",
        ),
    ],
)
def test_bad_inputs_fail_clearly(policy, change, error, message):
    obs = obs_only(make_batch(2))
    change(obs)
    with pytest.raises(error, match=message):
        policy.predict_chunk(obs)


def test_bad_training_batch_fails_clearly(policy):
    batch = make_batch(2)
    batch["action"] = batch["action"][:, :2]
    with pytest.raises(ValueError, match=r"action must be \(B, 4, 3\)"):
        policy.compute_loss(batch)
    with pytest.raises(KeyError, match="lacks 'action'"):
        policy.compute_loss(obs_only(batch))


def test_unlabelled_plans_add_no_plan_loss(policy):
    batch = make_batch(2)
    batch["plan"] = ["", ""]
    _, metrics = policy.compute_loss(batch)
    assert "plan_ce" not in metrics


def test_generate_plan_returns_text_per_sample(policy):
    plans = policy.generate_plan(obs_only(make_batch(3)), max_new_tokens=4)
    assert len(plans) == 3 and all(isinstance(p, str) for p in plans)


def test_reset_clears_episode_state(policy):
    policy.predict_chunk(obs_only(make_batch(1)))
    cache = policy.processor.step(TokenizeTask)._cache
    assert cache
    policy.reset()
    assert not cache


def test_long_instructions_are_cut(policy):
    obs = obs_only(make_batch(1))
    obs["task"] = ["pick the red cube " * 40]
    assert policy.predict_chunk(obs).shape == (1, CHUNK, 3)
    cache = policy.processor.step(TokenizeTask)._cache
    assert len(cache[obs["task"][0]]) == policy.config.max_text_tokens


def test_unknown_head_lists_known():
    # the config refuses it where it is set, naming the field
    with pytest.raises(ValueError, match="kind: expected one of chunk, discrete, flow"):
        tiny_config("diffusion", "qwen2")


def test_building_does_not_mutate_the_callers_config():
    cfg = tiny_config("chunk", "llama")
    VLAPolicy(cfg, device="cpu")
    assert cfg.backbone.hf_config is None and cfg.vision.hf_config is None


def test_shipped_tokenizer_is_the_default():
    policy = VLAPolicy(tiny_config("chunk", "gpt2"), device="cpu")
    assert policy.tokenizer.name_or_path == str(shipped_tokenizer_dir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_placement_and_bf16_autocast():
    policy = VLAPolicy(tiny_config("discrete", "qwen2"), stats=tiny_stats(), device="cuda").eval()
    out = policy.predict_chunk(obs_only(make_batch(2)))
    assert out.device.type == "cuda" and out.dtype == torch.float32
    loss, _ = policy.compute_loss(make_batch(2))
    loss.backward()


def test_plans_never_decode_to_action_tokens():
    """With the discrete head the vocab also holds 256 action ids; plans stay in the text rows."""
    torch.manual_seed(0)
    policy = VLAPolicy(tiny_config("discrete", "llama"), device="cpu").eval()
    offset = policy.config.backbone.extra_token_offset
    with torch.no_grad():  # make the action rows win every argmax over the full vocab
        policy.backbone.lm.get_output_embeddings().weight[offset:] *= 1000.0
    obs = obs_only(make_batch(2))
    prefix, mask, pos, _ = policy.prefix_from_inputs(policy.preprocess(obs))
    ids = PlanText.generate(policy.backbone, prefix, mask, pos, 1, 2, max_new_tokens=5)
    assert all(0 <= t < offset for row in ids for t in row)


def test_goal_loss_needs_the_final_state_and_trains_the_image_path(tmp_path):
    from embodied_mm.features import FINAL_STATE

    torch.manual_seed(0)
    policy = VLAPolicy(tiny_config(goal_loss_weight=0.5), stats=tiny_stats(), device="cpu")
    batch = make_batch(4)
    with pytest.raises(KeyError, match="episode_final_state"):
        policy.compute_loss(batch)
    batch[FINAL_STATE] = torch.randn(4, STATE_DIM)
    loss, metrics = policy.compute_loss(batch)
    assert metrics["goal_mse"] > 0 and loss.item() > metrics["l1"]
    loss.backward()
    assert policy.goal_head[0].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.vision.parameters())
    policy.save_pretrained(tmp_path)  # the head is part of the checkpoint and loads back
    loaded = VLAPolicy.from_pretrained(tmp_path, device="cpu")
    torch.testing.assert_close(loaded.goal_head[0].weight, policy.goal_head[0].weight)


def test_goal_waypoints_stack_each_waypoints_goal_dims():
    from embodied_mm.features import FINAL_STATE, FIRST_PHASE_STATE

    torch.manual_seed(0)
    config = tiny_config(
        goal_loss_weight=1.0, goal_dims=[1, 3], goal_waypoints=["first_phase", "final"]
    )
    policy = VLAPolicy(config, stats=tiny_stats(), device="cpu")
    assert policy.goal_head[-1].out_features == 4  # 2 waypoints x 2 dims
    batch = make_batch(4)
    batch[FINAL_STATE] = torch.randn(4, STATE_DIM)
    with pytest.raises(KeyError, match="episode_first_phase_state"):
        policy.compute_loss(batch)
    batch[FIRST_PHASE_STATE] = torch.randn(4, STATE_DIM)
    _, metrics = policy.compute_loss(batch)
    # the loss is the MSE against [first-phase dims 1, 3, final dims 1, 3], in that order
    inputs = policy.preprocess(batch)
    feats = policy.prefix_from_inputs(inputs)[3]  # (B, C, N, Dv)
    pred = policy.goal_head(feats.flatten(1).float())  # (B, 4)
    want = torch.cat([inputs[FIRST_PHASE_STATE][:, [1, 3]], inputs[FINAL_STATE][:, [1, 3]]], 1)
    expected = torch.nn.functional.mse_loss(pred, want).item()
    assert metrics["goal_mse"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match=r"goal_waypoints\.0: expected one of first_phase"):
        PolicyConfig(goal_waypoints=["middle"])


def test_goal_input_feeds_the_goal_heads_waypoints_to_the_action_path(tmp_path):
    from embodied_mm.features import FINAL_STATE, PHASE_END_STATE

    torch.manual_seed(0)
    waypoints = {"goal_loss_weight": 1.0, "goal_waypoints": ["phase_end", "final"]}
    plain = VLAPolicy(tiny_config(**waypoints), stats=tiny_stats(), device="cpu")
    policy = VLAPolicy(tiny_config(**waypoints, goal_input=True), stats=tiny_stats(), device="cpu")
    obs = obs_only(make_batch(2))
    length = plain.prefix_from_inputs(plain.preprocess(obs))[0].shape[1]
    prefix = policy.prefix_from_inputs(policy.preprocess(obs))[0]  # (B, P, H)
    assert prefix.shape[1] == length + 1  # one waypoint token after the state's
    # the token is the goal head's prediction: change the head and only that token moves
    with torch.no_grad():
        policy.goal_head[-1].bias.add_(1.0)
    moved = policy.prefix_from_inputs(policy.preprocess(obs))[0]
    torch.testing.assert_close(moved[:, :-1], prefix[:, :-1])
    assert not torch.allclose(moved[:, -1], prefix[:, -1])
    # the action loss does not train the goal head through the token (detached)
    batch = make_batch(2)
    batch[FINAL_STATE] = batch[PHASE_END_STATE] = torch.randn(2, STATE_DIM)
    loss, _ = policy.compute_loss(batch)
    goal_only = torch.autograd.grad(loss, policy.goal_head[-1].weight, retain_graph=True)[0]
    policy.config.goal_loss_weight = 0.0  # the goal loss counts for nothing: actions alone
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    assert goal_only.abs().sum() > 0 and policy.goal_head[-1].weight.grad.abs().sum() == 0
    assert policy.goal_in.weight.grad.abs().sum() > 0
    policy.config.goal_loss_weight = 1.0
    policy.save_pretrained(tmp_path)  # the token loads back with the checkpoint
    loaded = VLAPolicy.from_pretrained(tmp_path, device="cpu")
    torch.testing.assert_close(loaded.goal_in.weight, policy.goal_in.weight)
    with pytest.raises(ValueError, match="goal_input feeds the goal head's waypoints"):
        VLAPolicy(tiny_config(goal_input=True), stats=tiny_stats(), device="cpu")


def test_goal_dims_choose_what_the_goal_head_predicts():
    policy = VLAPolicy(
        tiny_config(goal_loss_weight=1.0, goal_dims=[1, 3]), stats=tiny_stats(), device="cpu"
    )
    assert policy.goal_head[-1].out_features == 2
    with pytest.raises(ValueError, match=r"goal_dims must be state dims in \[0, 5\)"):
        VLAPolicy(tiny_config(goal_loss_weight=1.0, goal_dims=[7]), device="cpu")


def test_reset_from_another_thread_never_breaks_an_inference(policy):
    """A reset() (the control loop, a server's other client) clearing the instruction cache
    while another thread is inside an inference; the trace pause lets the reset land between
    any two lines of the encoding."""
    obs = obs_only(make_batch(4))  # 4 different instructions
    errors: list[BaseException] = []

    def infer() -> None:
        try:
            for _ in range(10):
                policy.predict_chunk(obs)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    with pausing_inside(TokenizeTask.encode.__code__):
        worker = threading.Thread(target=infer)
        worker.start()
    while worker.is_alive():
        policy.reset()
        time.sleep(0.0005)
    worker.join()
    assert not errors, repr(errors[0])
    assert policy.predict_chunk(obs).shape == (4, CHUNK, 3)
