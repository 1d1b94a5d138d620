"""Parity with Hugging Face transformers: lengen's Llama-like model as a ``LlamaForCausalLM``.

A lengen model with ``norm: rmsnorm``, ``mlp: swiglu``, ``position: rope`` (no biases anywhere, no
dropout, no output head beyond the token head) computes what ``LlamaForCausalLM`` computes with the
same weights: RMSNorm before attention and MLP, RoPE on the two halves of each head (``rotate_half``),
``down(silu(gate(x)) * up(x))``, a final RMSNorm and the LM head. ``llama_state_dict`` maps the
weights, ``export_llama`` writes a folder that ``LlamaForCausalLM.from_pretrained`` loads (needs the
``hf`` extra). Position ids are the plain 0..T-1, as a Llama model uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lengen.errors import ConfigError, LengenError
from lengen.model import Block, ModelConfig, Transformer


def check_llama_like(cfg: ModelConfig) -> None:
    """Raise a one-line error naming the first setting a Llama model cannot express."""
    wanted = {"norm": "rmsnorm", "mlp": "swiglu", "position": "rope"}
    for key, value in wanted.items():
        if getattr(cfg, key) != value:
            raise ConfigError(f"export to Llama: model.{key} must be {value!r}, not {getattr(cfg, key)!r}")
    extra = set(cfg.position_args) - {"theta"}
    if extra:
        raise ConfigError(f"export to Llama: rope parameter(s) {sorted(extra)} have no Llama equivalent")
    if cfg.dropout:
        raise ConfigError(f"export to Llama: model.dropout must be 0, not {cfg.dropout}")
    if (cfg.d_model // cfg.n_heads) % 2:
        raise ConfigError(f"export to Llama: the head width {cfg.d_model // cfg.n_heads} must be even")


def llama_config_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """Keyword arguments of ``transformers.LlamaConfig`` for the same architecture."""
    check_llama_like(cfg)
    return {"vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "intermediate_size": cfg.ff_width,
            "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
            "num_key_value_heads": cfg.n_heads, "rms_norm_eps": 1e-6,  # lengen.model.RMSNorm's eps
            "rope_theta": float(cfg.position_args.get("theta", 10000.0)), "tie_word_embeddings": cfg.tie_embeddings,
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "hidden_act": "silu"}


def llama_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """lengen's weights under ``LlamaForCausalLM``'s names (fused products split into their parts)."""
    cfg = model.cfg
    check_llama_like(cfg)
    if model.heads():
        raise ConfigError(f"export to Llama: output heads {sorted(model.heads())} have no Llama equivalent")
    d = cfg.d_model
    out: dict[str, Any] = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight,
           "lm_head.weight": model.head.weight}
    for i, block in enumerate(model.blocks):
        assert isinstance(block, Block)
        attn, mlp, pre = block.attn, block.mlp, f"model.layers.{i}."
        if attn.fused:
            q, k, v = attn.qkv.weight.split(d)
        else:
            q, k, v = attn.q.weight, attn.k.weight, attn.v.weight
        gate, up = mlp.gate.weight, mlp.up.weight
        out |= {pre + "input_layernorm.weight": block.norm1.weight,
                pre + "post_attention_layernorm.weight": block.norm2.weight,
                pre + "self_attn.q_proj.weight": q, pre + "self_attn.k_proj.weight": k,
                pre + "self_attn.v_proj.weight": v, pre + "self_attn.o_proj.weight": attn.out.weight,
                pre + "mlp.gate_proj.weight": gate, pre + "mlp.up_proj.weight": up,
                pre + "mlp.down_proj.weight": mlp.down.weight}
    return {k: t.detach().clone().contiguous() for k, t in out.items()}


def to_llama(model: Transformer) -> Any:
    """A ``transformers.LlamaForCausalLM`` holding ``model``'s weights (in eval mode, on the CPU)."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM  # optional: the hf extra
    except ImportError:
        raise LengenError("export to Llama needs transformers (pip install 'lengen[hf]')") from None
    config = LlamaConfig(**llama_config_kwargs(model.cfg), max_position_embeddings=4096)
    llama = LlamaForCausalLM(config)
    weights = {k: v.cpu().float() for k, v in llama_state_dict(model).items()}
    if model.cfg.tie_embeddings:
        weights.pop("lm_head.weight")
    missing, unexpected = llama.load_state_dict(weights, strict=False)
    left = [k for k in missing if not (model.cfg.tie_embeddings and k == "lm_head.weight")]
    if left or unexpected:
        raise LengenError(f"export to Llama: weights missing {left[:3]} or unexpected {unexpected[:3]}")
    return llama.eval()


def export_llama(model: Transformer, folder: str | Path) -> Path:
    """Write ``model`` as a Hugging Face ``LlamaForCausalLM`` folder (config.json and safetensors)."""
    folder = Path(folder)
    to_llama(model).save_pretrained(folder)
    return folder
