"""Model and position-scheme properties: causality, shift invariance, cache equivalence, id handling."""

import pytest
import torch
from properties import (
    check_cache_equals_full_forward,
    check_causal,
    check_custom_ids,
    check_rotation_tables,
    check_shift,
    plain_ids,
    scheme_model,
)

from lengen.errors import ConfigError
from lengen.model import ModelConfig, Transformer
from lengen.positions import SCHEMES

SCHEME_ARGS = {name: {} for name in SCHEMES.names()}
SCHEME_ARGS["randomized_rope"] = {"base": "rope"}
SCHEME_ARGS["t5_local"] = {"bidirectional": True, "scale": 4.0, "window": 3}  # coupling's local body
VARIANTS = {"randomized_rope": "randomized", "t5_local": "t5_bias"}


def build(name: str, **model_args) -> Transformer:
    return scheme_model(VARIANTS.get(name, name), SCHEME_ARGS[name], **model_args)


def ids_for(model: Transformer, b: int, t: int, start: int = 0) -> torch.Tensor:
    return plain_ids(model, b, t, start)


@pytest.mark.parametrize("name", sorted(SCHEME_ARGS))
@pytest.mark.parametrize("model_args", [{}, {"norm": "rmsnorm", "mlp": "swiglu"},
                                        {"norm": "rmsnorm", "mlp": "swiglu", "fused_projections": False}])
def test_changing_a_later_token_never_changes_an_earlier_output(name, model_args):
    check_causal(build(name, **model_args))


@pytest.mark.parametrize("name", SCHEMES.names())
def test_every_scheme_keeps_its_declared_shift_invariance(name):
    """Discovered from the registry: a scheme declaring ``shift_invariant`` ignores a common shift of
    the ids, every other one sees it (a new scheme is covered without editing this file)."""
    check_shift(build(name), SCHEMES.get_class(name).shift_invariant)


def test_bidirectional_t5_bias_tells_keys_ahead_from_keys_behind_and_stays_shift_invariant():
    from lengen.positions.t5_bias import T5Bias
    dims = Transformer(ModelConfig(vocab_size=13, position="t5_bias")).positions.dims
    causal = T5Bias(dims, T5Bias.Params(num_buckets=16, max_distance=8))
    both = T5Bias(dims, T5Bias.Params(num_buckets=16, max_distance=8, bidirectional=True))
    d = torch.arange(-12, 13).float()
    assert (causal.buckets(d)[:12] == 0).all()  # keys ahead look like distance 0 to causal buckets
    b = both.buckets(d).tolist()
    assert len(set(b[9:16])) == 7 and b[12] == 0  # -3 .. 3 are exact, and different from each other
    assert b[0] == b[1] == 15 and b[-1] == b[-2] == 7  # beyond max_distance, one bucket per sign
    assert max(b) < 16
    # coupled ids go up and down; a common shift must still change nothing
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=13, position="t5_bias",
                                    position_args={"num_buckets": 16, "max_distance": 8, "bidirectional": True}))
    with torch.no_grad():
        model.positions.table.weight.normal_()
    model.eval()
    x, ids = torch.randint(0, 13, (2, 12)), torch.tensor([[3, 2, 1, 0, 2, 1, 0, 1, 2, 3, 4, 0]] * 2)
    assert torch.allclose(model(x, ids + 40), model(x, ids), atol=2e-4)
    assert not torch.allclose(model(x, ids.flip(1)), model(x, ids), atol=1e-3)


@pytest.mark.parametrize("args", [{"window": -1}, {"scale": 0}, {"num_buckets": 2, "bidirectional": True}])
def test_bad_t5_parameters_are_clear_errors(args):
    with pytest.raises(ConfigError, match="t5_bias"):
        Transformer(ModelConfig(vocab_size=13, position="t5_bias", position_args=args))


def test_t5_window_hides_keys_far_away_in_id_space():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=13, position="t5_bias", n_layers=2, position_args={
        "num_buckets": 16, "max_distance": 8, "bidirectional": True, "window": 2}))
    model.eval()
    # tokens 0-2 have ids 10-12; tokens 3-6 have ids 0-3, more than 2 from every id of the first three
    ids = torch.tensor([[10, 11, 12, 0, 1, 2, 3]])
    x = torch.randint(0, 13, (1, 7))
    x2 = x.clone()
    x2[0, :3] = (x2[0, :3] + 1) % 13
    y, y2 = model(x, ids), model(x2, ids)
    assert torch.allclose(y[:, 3:], y2[:, 3:], atol=1e-6)
    assert not torch.allclose(y[:, :3], y2[:, :3], atol=1e-4)


@pytest.mark.parametrize("name", sorted(SCHEME_ARGS))
def test_incremental_decoding_with_cache_equals_full_forward(name):
    check_cache_equals_full_forward(build(name))


def test_custom_ids_flow_through_every_scheme():
    """Coupled ids repeat values and need not increase; every scheme must accept them."""
    for name in SCHEME_ARGS:
        check_custom_ids(build(name))


def test_learned_random_offset_shifts_ids_in_training_only():
    model = Transformer(ModelConfig(vocab_size=5, position="learned",
                                    position_args={"max_position": 64, "random_offset": True}))
    ids = torch.arange(10).expand(500, 10)
    model.train()
    shifted = model.prepare_ids(ids, torch.Generator().manual_seed(0))
    offsets = shifted[:, 0]
    assert torch.equal(shifted - offsets[:, None], ids)  # one offset per sample, spacing kept
    assert offsets.min() == 0 and offsets.max() == 54 and shifted.max() < 64
    model.eval()
    assert torch.equal(model.prepare_ids(ids, torch.Generator().manual_seed(0)), ids)


def test_randomized_ids_keep_order_and_ties():
    model = Transformer(ModelConfig(vocab_size=5, position="randomized", position_args={"max_position": 100}))
    ids = torch.tensor([[0, 1, 2, 2, 3, 7]]).expand(50, 6)
    out = model.prepare_ids(ids, torch.Generator().manual_seed(1))
    assert (out[:, 1:] >= out[:, :-1]).all() and torch.equal(out[:, 2], out[:, 3])
    assert (out[:, 4] < out[:, 5]).all() and out.max() < 100
    assert len({tuple(r) for r in out.tolist()}) > 40  # different draws per sample


def test_learned_table_overflow_is_a_clear_error():
    model = Transformer(ModelConfig(vocab_size=5, position="learned", position_args={"max_position": 16}))
    with pytest.raises(ConfigError, match="exceeds its table of 16 positions"):
        model(torch.zeros(1, 20, dtype=torch.long), torch.arange(20)[None])


@pytest.mark.parametrize("cfg,message", [
    ({"d_model": 30, "n_heads": 4}, "divisible"),
    ({"norm": "batchnorm"}, "unknown norm"),
    ({"position": "alibii"}, "did you mean 'alibi'"),
    ({"position": "rope", "position_args": {"thetaa": 3.0}}, "unknown parameter 'thetaa'"),
])
def test_bad_model_config_is_a_clear_error(cfg, message):
    with pytest.raises(ConfigError, match=message):
        Transformer(ModelConfig(vocab_size=5, **cfg))


@pytest.mark.parametrize("name", SCHEMES.names())
def test_rotation_tables_agree_with_rotate(name):
    """Discovered from the registry: what the fused q/k/v path applies equals the scheme's rotate."""
    check_rotation_tables(build(name))


def test_flops_per_token_counts_the_matmuls():
    model = Transformer(ModelConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=4))
    # 2 layers x (4 d^2 attention + 8 d^2 MLP + T d attention scores) + d V head, x2 FLOPs per MAC
    assert model.flops_per_token(32) == 2 * (2 * (12 * 64 * 64 + 32 * 64) + 64 * 100)


@pytest.mark.parametrize("head_dim", [16, 7])
def test_rope_rotation_is_the_textbook_formula_bit_for_bit(head_dim):
    from lengen.positions.base import Dims
    from lengen.positions.rope import RoPE
    rope = RoPE(Dims(d_model=head_dim * 2, n_heads=2))
    x, ids = torch.randn(2, 3, 2, 9, head_dim), torch.randint(0, 500, (3, 9))
    half = head_dim // 2
    angle = ids.float()[:, None, :, None] * (1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float32) / half))
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:2 * half]
    expected = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * half:]], dim=-1)
    assert torch.equal(rope.rotate(x, ids), expected)
