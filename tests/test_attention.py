"""The preallocated key/value cache and the attention-pattern hook."""

import numpy as np
import pytest
import torch
from test_model import SCHEME_ARGS, build, ids_for

from lengen.evaluate import generation_inputs
from lengen.generate import generate
from lengen.model import KVCache, capture_attention
from lengen.tasks import make_task


@pytest.mark.parametrize("capacity", [0, 8, 19, 64])
def test_cache_of_any_capacity_equals_the_full_forward(capacity):
    model = build("t5_bias")
    x = torch.randint(0, 13, (2, 19))
    ids = ids_for(model, 2, 19)
    cache = KVCache(capacity=capacity)
    pieces = [model(x[:, :7], ids[:, :7], cache), model(x[:, 7:10], ids[:, 7:10], cache)]
    pieces += [model(x[:, t : t + 1], ids[:, t : t + 1], cache) for t in range(10, 19)]
    assert torch.allclose(torch.cat(pieces, 1), model(x, ids), atol=1e-5)
    assert cache.length == 19 and all(k.shape[2] >= 19 for k in cache.keys)


def test_a_decoding_step_writes_into_the_preallocated_buffers():
    model = build("rope")
    x = torch.randint(0, 13, (2, 12))
    ids = ids_for(model, 2, 12)
    cache = KVCache(capacity=12)
    model(x[:, :4], ids[:, :4], cache)
    buffers = [k.data_ptr() for k in cache.keys + cache.values]
    for t in range(4, 12):
        model(x[:, t : t + 1], ids[:, t : t + 1], cache)
    assert [k.data_ptr() for k in cache.keys + cache.values] == buffers  # no copy, no concatenation


@pytest.mark.parametrize("position", ["nope", "rope", "alibi", "t5_bias", "learned"])
def test_cached_greedy_decoding_equals_uncached(position):
    model = build(position)
    batch = make_task("copy", symbols=10).sample(np.random.default_rng(0), 8, 16)
    prompt, prompt_ids, steps = generation_inputs(batch, batch.position_ids)
    given = batch.position_ids[:, -steps:]
    fast = generate(model, prompt, prompt_ids, steps, output_ids=given)
    slow = generate(model, prompt, prompt_ids, steps, output_ids=given, use_cache=False)
    assert torch.equal(fast.tokens, slow.tokens)


@pytest.mark.parametrize("name", sorted(SCHEME_ARGS))
def test_captured_attention_is_causal_and_is_what_the_layer_applies(name):
    model = build(name, n_layers=2)
    x, ids = torch.randint(0, 13, (2, 40)), ids_for(model, 2, 40)
    with capture_attention(model, chunk=16) as patterns:  # several slices of queries
        model.hidden(x, ids)
    assert sorted(patterns) == [0, 1]
    for w in patterns.values():
        assert w.shape == (2, model.cfg.n_heads, 40, 40)
        assert torch.equal(w.triu(1), torch.zeros_like(w))  # no weight above the diagonal
        assert torch.allclose(w.sum(-1), torch.ones(2, model.cfg.n_heads, 40), atol=1e-5)
    # the weights reproduce the layer's output: weights @ values, through the output projection
    seen = {}
    attn = model.blocks[1].attn
    attn.register_forward_hook(lambda module, args, out: seen.update(args=args, out=out))
    model.hidden(x, ids)
    h, layer_ids, scheme = seen["args"][:3]
    _, _, v = attn.project(h, layer_ids, scheme)
    y = (patterns[1] @ v).transpose(1, 2).reshape(h.shape)
    assert torch.allclose(attn.out(y), seen["out"], atol=1e-5)
    assert all(a.capture is None for a in (blk.attn for blk in model.blocks))  # the hook is removed after


def test_capture_at_a_length_beyond_training_and_with_a_cache():
    model = build("alibi")
    x, ids = torch.randint(0, 13, (1, 700)), ids_for(model, 1, 700)
    cache = KVCache()
    with capture_attention(model, layers=[0], chunk=128) as patterns:
        model.hidden(x[:, :699], ids[:, :699], cache)
        full = patterns[0]
        model.hidden(x[:, 699:], ids[:, 699:], cache)  # one query continuing the cache sees every key
    assert full.shape[-1] == 699 and torch.equal(full.triu(1), torch.zeros_like(full))
    assert patterns[0].shape == (1, model.cfg.n_heads, 1, 700)
    assert torch.allclose(patterns[0].sum(-1), torch.ones(1, model.cfg.n_heads, 1), atol=1e-5)
