"""Parity with transformers' LlamaForCausalLM: same weights, same logits; export to a Hugging Face folder."""

import pytest
import torch

from lengen.errors import ConfigError
from lengen.hf import export_llama, llama_state_dict, to_llama
from lengen.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")


def _llama_like(seed: int = 0, **changes) -> Transformer:
    torch.manual_seed(seed)
    args = {"norm": "rmsnorm", "mlp": "swiglu", "position": "rope", **changes}
    cfg = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, **args)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # norms start at 1: move them, so a swapped or missing norm weight shows
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
    return model


def _logits_both(model: Transformer, llama, t: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, model.cfg.vocab_size, (3, t), generator=torch.Generator().manual_seed(1))
    ids = torch.arange(t).expand(3, t)
    with torch.no_grad():
        return model(tokens, ids), llama(input_ids=tokens).logits


@pytest.mark.parametrize("changes", [{}, {"fused_projections": True}, {"tie_embeddings": True},
                                     {"position_args": {"theta": 500.0}, "d_ff": 40}])
def test_the_same_weights_give_the_same_logits_as_llama(changes):
    model = _llama_like(**changes)
    ours, theirs = _logits_both(model, to_llama(model))
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()
    # and the comparison can fail: one norm weight changed on our side shows
    with torch.no_grad():
        model.blocks[1].norm2.weight[0] += 1.0
    changed, _ = _logits_both(model, to_llama(model))
    assert not torch.allclose(changed, theirs, atol=1e-5)


def test_export_writes_a_folder_that_llama_loads_with_equal_logits(tmp_path):
    model = _llama_like(seed=3)
    folder = export_llama(model, tmp_path / "llama")
    loaded = transformers.LlamaForCausalLM.from_pretrained(folder).eval()
    ours, theirs = _logits_both(model, loaded, t=40)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()


def test_fused_and_separate_products_export_the_same_weights():
    fused, separate = _llama_like(fused_projections=True), _llama_like()
    a, b = llama_state_dict(fused), llama_state_dict(separate)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same initial values too


@pytest.mark.parametrize("changes,match", [({"norm": "layernorm"}, "model.norm must be 'rmsnorm'"),
                                           ({"position": "alibi"}, "model.position must be 'rope'"),
                                           ({"position_head": True, "position_head_kind": "pointer"}, "output heads")])
def test_models_llama_cannot_express_are_refused_in_one_line(changes, match):
    with pytest.raises(ConfigError, match=match):
        llama_state_dict(_llama_like(**changes))


def test_weights_of_fused_products_load_into_separate_ones():
    fused, separate = _llama_like(seed=4, fused_projections=True), _llama_like(seed=5)
    separate.load_state_dict(fused.state_dict())
    tokens, ids = _inputs(fused)
    with torch.no_grad():
        assert torch.allclose(fused(tokens, ids), separate(tokens, ids), atol=1e-6)


def _inputs(model: Transformer) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    return tokens, torch.arange(16).expand(2, 16)
