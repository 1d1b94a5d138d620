"""Hand-written backward passes for the model's elementwise hot spots on the CPU.

Autograd's versions of these small formulas copy strided inputs, concatenate halves, pad each
piece's gradient with zeros and keep every intermediate; on the CPU that elementwise traffic is a
fifth of a training step beside the matrix products (benchmarks/train_throughput.py). Each function
here computes the same forward values, with fewer passes over memory in the backward:

- ``RotateHalves``: RoPE's rotation. Outputs *and* gradients are the same products and sums as
  autograd's, so trained numbers are bit-identical (benchmarks/bit_identity.py).
- ``RotateQKV``: the fused q/k/v product split into heads, with queries and keys rotated; the
  gradient is written straight into one [B, T, 3 d_model] buffer instead of being assembled from
  three zero-padded pieces. Bit-identical as well.
- ``RMSNormFunction``: forward values equal ``F.rms_norm``; the gradient is the closed form, so its
  last bits differ from autograd's (no shipped experiment uses RMSNorm).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable


def rotate_halves(x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor, out: torch.Tensor | None = None,
                  inverse: bool = False) -> torch.Tensor:
    """``[x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin]`` given ``cos2 = [cos, cos]``, ``sin2 = [-sin, sin]``.

    Each element is two products and one sum, exactly as ``x * cos2 + [x2, x1] * sin2`` (a + (-b) ==
    a - b in IEEE arithmetic). ``inverse`` applies the transpose, which is the gradient through the
    rotation (x1 fed out1 by cos and out2 by sin, x2 out2 by cos and out1 by -sin): the same products
    and sums as autograd's, since a sum of two terms does not depend on their order. ``out`` (any
    strides) receives the result; default a new contiguous tensor.
    """
    half = x.shape[-1] // 2
    if out is None:  # contiguous: torch.mul alone would keep the strides of a view of the q/k/v product
        out = torch.empty(torch.broadcast_shapes(x.shape, cos2.shape), dtype=x.dtype, device=x.device)
    first, second = sin2[..., :half], sin2[..., half:]
    if inverse:
        first, second = second, first
    torch.mul(x, cos2, out=out)
    out[..., :half] += x[..., half:] * first
    out[..., half:] += x[..., :half] * second
    return out


def rotate(x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
    """``rotate_halves`` with a gradient: by ``RotateHalves`` when eager; under ``torch.compile`` (which
    fuses the elementwise work itself, and cannot trace the ``out=`` writes) by the plain formula, the
    same products and sums."""
    if torch.compiler.is_compiling():
        half = x.shape[-1] // 2
        return x.contiguous() * cos2 + torch.cat([x[..., half:], x[..., :half]], dim=-1) * sin2
    return RotateHalves.apply(x, cos2, sin2)


class RotateHalves(torch.autograd.Function):
    """``rotate_halves`` with its gradient; ``x`` may be a strided view (the output is contiguous)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos2, sin2)
        return rotate_halves(x, cos2, sin2)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos2, sin2 = ctx.saved_tensors
        return rotate_halves(grad, cos2, sin2, inverse=True), None, None


class RotateQKV(torch.autograd.Function):
    """[B, T, 3 d_model] q/k/v product -> rotated queries and keys (contiguous) and values (a view), each
    [B, H, T, head_dim]. The values are the same strided view that ``view(...).permute(...)`` gives, so
    the attention kernel sees exactly what it saw without this function."""

    @staticmethod
    def forward(ctx: Any, qkv: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor,
                n_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, three_d = qkv.shape
        ctx.shape = (b, t, n_heads, three_d // (3 * n_heads))
        heads = qkv.view(b, t, 3, *ctx.shape[2:]).permute(2, 0, 3, 1, 4)
        ctx.save_for_backward(cos2, sin2)
        return rotate_halves(heads[0], cos2, sin2), rotate_halves(heads[1], cos2, sin2), heads[2]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_q: torch.Tensor | None, grad_k: torch.Tensor | None,
                 grad_v: torch.Tensor | None) -> tuple[torch.Tensor, None, None, None]:
        cos2, sin2 = ctx.saved_tensors
        b, t, h, d = ctx.shape
        ref = next(g for g in (grad_q, grad_k, grad_v) if g is not None)
        grad = ref.new_empty(b, t, 3, h, d)
        slots = grad.permute(2, 0, 3, 1, 4)  # [3, B, H, T, head_dim] views into the one buffer
        for slot, g in zip(slots[:2], (grad_q, grad_k), strict=True):
            if g is None:
                slot.zero_()
            else:
                rotate_halves(g, cos2, sin2, out=slot, inverse=True)
        if grad_v is None:
            slots[2].zero_()
        else:
            slots[2].copy_(grad_v)
        return grad.view(b, t, 3 * h * d), None, None, None


class RMSNormFunction(torch.autograd.Function):
    """RMSNorm over the last dimension: forward values equal ``F.rms_norm`` (computed in float32, like
    it); the backward is the closed form ``rstd * (g w - xhat * mean(g w * xhat))``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # half precision computes in float32
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True).add_(eps))
        xhat = xf * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        return (xhat.type_as(x) * weight).to(x.dtype)  # in the input's dtype, as F.rms_norm

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        xhat, rstd, weight = ctx.saved_tensors
        g = grad.to(xhat.dtype)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (g * xhat).flatten(0, -2).sum(0).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            g_hat = g * weight.to(xhat.dtype)
            mean = (g_hat * xhat).mean(-1, keepdim=True)
            grad_x = torch.addcmul(g_hat, xhat, mean, value=-1).mul_(rstd).to(grad.dtype)
        return grad_x, grad_weight, None
