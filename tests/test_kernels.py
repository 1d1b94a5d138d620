"""The hand-written backward passes of lengen.kernels against autograd's own.

Bit for bit where the docstrings promise it (RoPE's rotation and the fused q/k/v split:
their trained numbers must not move), and by finite differences in float64 everywhere.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lengen.kernels import RMSNormFunction, RotateHalves, RotateQKV
from lengen.positions.base import Dims
from lengen.positions.rope import RoPE

B, T, H, D = 2, 7, 3, 8


def tables(head_dim: int = D, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    rope = RoPE(Dims(d_model=head_dim * H, n_heads=H))
    out = rope.rotation(torch.randint(0, 300, (B, T)), dtype)
    assert out is not None
    return out


def autograd_rotation(x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
    """What lengen computed before the kernel: x * [cos, cos] + [x2, x1] * [-sin, sin]."""
    half = x.shape[-1] // 2
    return x * cos2 + torch.cat([x[..., half:], x[..., :half]], dim=-1) * sin2


def grads(outputs: tuple[torch.Tensor, ...], inputs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outputs)
    return torch.autograd.grad(loss, inputs)[0]


def test_rotation_and_its_gradient_are_autograds_bit_for_bit_on_strided_input():
    torch.manual_seed(0)
    cos2, sin2 = tables()
    base = torch.randn(B, T, 2, H, D, requires_grad=True)
    view = base.permute(2, 0, 3, 1, 4)[0]  # strided, as the fused product hands it over
    ours = RotateHalves.apply(view, cos2, sin2)
    theirs = autograd_rotation(view.contiguous(), cos2, sin2)
    assert ours.is_contiguous() and torch.equal(ours, theirs)
    assert torch.equal(grads((ours,), base), grads((theirs,), base))


def test_fused_qkv_split_matches_view_permute_and_rotate_bit_for_bit():
    torch.manual_seed(1)
    cos2, sin2 = tables()
    qkv = torch.randn(B, T, 3 * H * D, requires_grad=True)
    heads = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
    theirs = (autograd_rotation(heads[0].contiguous(), cos2, sin2),
              autograd_rotation(heads[1].contiguous(), cos2, sin2), heads[2])
    ours = RotateQKV.apply(qkv, cos2, sin2, H)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert ours[2].stride() == theirs[2].stride()  # the attention kernel sees the same values layout
    assert torch.equal(grads(ours, qkv), grads(theirs, qkv))
    # an unused output (only the queries feed the loss) contributes nothing
    only_q = RotateQKV.apply(qkv, cos2, sin2, H)[0]
    expected = grads((autograd_rotation(heads[0].contiguous(), cos2, sin2),), qkv)
    assert torch.equal(grads((only_q,), qkv), expected)


def test_rmsnorm_forward_is_torchs_and_its_gradient_agrees():
    torch.manual_seed(3)
    x = torch.randn(B, T, 16, requires_grad=True)
    w = (1 + 0.3 * torch.randn(16)).requires_grad_()
    ours, theirs = RMSNormFunction.apply(x, w, 1e-6), F.rms_norm(x, (16,), w, 1e-6)
    assert torch.equal(ours, theirs)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(theirs, (x, w), g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Mismatch dtype")
def test_rmsnorm_on_half_precision_input_matches_torch_and_returns_a_half_gradient():
    x = torch.randn(B, T, 16, dtype=torch.bfloat16, requires_grad=True)
    ours = RMSNormFunction.apply(x, torch.ones(16, requires_grad=True), 1e-6)
    theirs = F.rms_norm(x, (16,), torch.ones(16), 1e-6)
    assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    (g,) = torch.autograd.grad(ours.sum(), x)
    assert g.dtype == torch.bfloat16


@pytest.mark.parametrize("kernel", ["rotate", "qkv", "rmsnorm"])
def test_gradients_pass_finite_differences_in_float64(kernel):
    torch.manual_seed(4)
    cos2, sin2 = tables(dtype=torch.float64)

    def x(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    cases = {
        "rotate": (lambda a: RotateHalves.apply(a, cos2, sin2), (x(B, H, T, D),)),
        "qkv": (lambda a: RotateQKV.apply(a, cos2, sin2, H), (x(B, T, 3 * H * D),)),
        "rmsnorm": (lambda a, w: RMSNormFunction.apply(a, w, 1e-6), (x(B, T, 6), x(6))),
    }
    fn, inputs = cases[kernel]
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("autocast", [False, True])
def test_attention_with_rotation_tables_equals_the_generic_rotate_path(autocast, monkeypatch):
    """The fused q/k/v path through RotateQKV gives what the scheme's own rotate gave, also under bf16
    autocast (the tables must take the product's dtype, not the input's)."""
    from lengen.model import ModelConfig, Transformer

    torch.manual_seed(5)
    model = Transformer(ModelConfig(vocab_size=11, d_model=32, n_layers=2, n_heads=2, position="rope"))
    tokens, ids = torch.randint(0, 11, (2, 9)), torch.arange(9).expand(2, 9)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(tokens, ids)
        logits.float().square().mean().backward()
        return logits, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    fused, fused_grads = run()
    monkeypatch.setattr(type(model.positions), "rotation", lambda self, ids, dtype: None)
    generic, generic_grads = run()
    assert torch.equal(fused, generic)
    assert all(torch.equal(a, b) for a, b in zip(fused_grads, generic_grads, strict=True))
