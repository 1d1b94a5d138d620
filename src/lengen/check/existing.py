"""Step 3 of `lengen check`: the user's own Hugging Face model beyond its training context, as it is
and with one positional change through transformers' RoPE scaling (``rope_parameters``): linear
position interpolation, dynamic NTK and YaRN, each with factor = evaluated length / declared context.

The change is applied by rebuilding the model's rotary-embedding module from an edited copy of its
config (the weights are untouched), so one loaded model serves every variant.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lengen.errors import LengenError

VARIANTS = ("as is", "linear", "dynamic", "yarn")


def _rotary_owner(model: Any) -> tuple[Any, str]:
    for module in model.modules():
        if hasattr(module, "rotary_emb"):
            return module, "rotary_emb"
    raise LengenError(f"{type(model).__name__} has no rotary embedding (rotary_emb): RoPE scaling does not apply")


def set_rope(model: Any, variant: str, factor: float, declared: int) -> None:
    """Rebuild the rotary embedding for ``variant`` (``as is`` restores the original)."""
    owner, name = _rotary_owner(model)
    original = getattr(model, "_lengen_rope_original", None)
    if original is None:
        original = getattr(owner, name)
        model._lengen_rope_original = original
    if variant == "as is":
        setattr(owner, name, original)
        return
    if variant not in VARIANTS:
        raise LengenError(f"unknown RoPE change {variant!r}; known: {', '.join(VARIANTS)}")
    cfg = copy.deepcopy(model.config)
    params = dict(getattr(cfg, "rope_parameters", None) or {})
    theta = params.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    params = {"rope_type": variant, "factor": float(factor), "rope_theta": theta}
    if variant in ("yarn", "dynamic"):
        params["original_max_position_embeddings"] = declared
    cfg.rope_parameters = params
    cfg.max_position_embeddings = declared  # dynamic NTK scales beyond this
    setattr(owner, name, type(original)(cfg))


def variant_losses(model: Any, windows: torch.Tensor, declared: int, progress: bool = True,
                   done: dict[str, np.ndarray] | None = None, save: Any = None) -> dict[str, np.ndarray]:
    """Per-token losses ``[W, C-1]`` of every variant on ``windows [W, C]`` (C = 2 x declared or more)."""
    factor = (windows.shape[1] - 1) / declared
    out = dict(done or {})
    model.eval()
    for variant in VARIANTS:
        if variant in out:
            continue
        set_rope(model, variant, factor, declared)
        rows = []
        with torch.no_grad():
            for w in tqdm(windows, desc=f"step 3: {variant}", unit="window", disable=not progress,
                          dynamic_ncols=True, leave=False):
                logits = model(input_ids=w[None, :-1], use_cache=False).logits[0].float()
                rows.append(torch.nn.functional.cross_entropy(logits, w[1:], reduction="none").numpy())
        out[variant] = np.stack(rows)
        if save is not None:
            save(out)
    set_rope(model, "as is", 1.0, declared)
    return out


def load_hf(path: str) -> tuple[Any, Any, int | None, str]:
    """(model, tokenizer or None, declared context, description) of a Hugging Face folder or a .gguf
    file, offline (``lengen.diagnose.sources`` conventions: nothing is downloaded)."""
    import contextlib
    import io
    import os
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.exists():
        raise LengenError(f"model not found: {path}")
    gguf = None
    if p.is_file():
        if p.suffix != ".gguf":
            raise LengenError(f"model {path} is a file; give a Hugging Face model folder or a .gguf file")
        p, gguf = p.parent, p.name
    elif not (p / "config.json").is_file():
        files = sorted(x.name for x in p.glob("*.gguf"))
        if len(files) != 1:
            raise LengenError(f"{p} holds no config.json and {len(files)} .gguf files; give the model folder or one .gguf")
        gguf = files[0]
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise LengenError("--model needs the hf extra: pip install 'lengen[hf]'") from None
    transformers.logging.set_verbosity_error()
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf:
        kwargs["gguf_file"] = gguf
    cache = _gguf_cache(p / gguf) if gguf else None
    if cache is not None and (cache / "config.json").is_file():
        p, kwargs = cache, {"local_files_only": True}  # converted before: seconds instead of minutes
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the GGUF de-quantizer's own progress bar
            model = transformers.AutoModelForCausalLM.from_pretrained(str(p), dtype=torch.float32, **kwargs)
    except Exception as e:  # transformers raises many kinds; one line for the user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LengenError(f"could not load a causal LM from {path}: {first}") from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(p), **kwargs)
    except Exception:  # no tokenizer next to the model: the caller falls back to GPT-2 BPE
        tokenizer = None
    if cache is not None and p != cache:
        _save_cache(cache, model, tokenizer)
    declared = getattr(model.config, "max_position_embeddings", None)
    return model, tokenizer, int(declared) if declared else None, f"{type(model).__name__} from {path}"


def _gguf_cache(gguf: Any) -> Any:
    """Where the de-quantized copy of ``gguf`` is kept (``LENGEN_CACHE`` or ~/.cache/lengen): transformers
    de-quantizes a GGUF file in Python, which took 24 s for SmolLM2-135M on an idle 2-core machine and
    3 minutes under load; the converted safetensors copy loads in seconds. Keyed by path, size and time."""
    import hashlib
    import os
    from pathlib import Path

    st = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("LENGEN_CACHE", Path.home() / ".cache" / "lengen"))
    return root / "gguf" / f"{gguf.stem}-{key}"


def _save_cache(cache: Any, model: Any, tokenizer: Any) -> None:
    """Write the converted model atomically (a folder renamed into place); a failure only costs speed.
    By hand, not ``save_pretrained``: transformers refuses to serialize a model loaded from GGUF."""
    import json
    import shutil

    from safetensors.torch import save_model

    tmp = cache.with_name(cache.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config), encoding="utf-8")
        save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        tmp.replace(cache)
    except Exception:  # noqa: BLE001 - any failure here only means the next run converts again
        shutil.rmtree(tmp, ignore_errors=True)
