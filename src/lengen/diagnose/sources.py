"""Where the model and the data come from: lengen checkpoints, local Hugging Face folders, text.

Nothing is ever downloaded: Hugging Face loading sets ``HF_HUB_OFFLINE=1`` and passes
``local_files_only=True``. A model is wrapped as a ``ModelHandle``: a callable on token ids returning
logits, the input-embedding module (for gradient screening) and the context limit.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lengen.checkpoint import load_model as load_checkpoint
from lengen.errors import LengenError
from lengen.model import KVCache
from lengen.position_ids import prepare_position_ids
from lengen.tasks import Task

# re-exported: the tokenizers live in lengen.text.tokenizers (below tasks), the diagnosis uses them
from lengen.text.tokenizers import TextTokenizer, gpt2_tokenizer, hf_text_tokenizer

__all__ = ["ModelHandle", "Queries", "TextTokenizer", "gpt2_tokenizer", "hf_text_tokenizer", "hf_handle",
           "lengen_handle", "load_model", "pick_tokenizer", "task_queries", "text_queries", "token_classes"]


@dataclass
class ModelHandle:
    logits: Callable[[torch.Tensor], torch.Tensor]  # tokens [B, T] -> logits [B, T or 1, V]
    embedding: nn.Module | None  # called once per forward on the tokens; None disables screening
    vocab_size: int
    max_length: int | None  # longest sequence the model accepts (None: no limit)
    description: str
    task: Task | None = None  # the task a lengen checkpoint was trained on
    tokenizer: Any = None  # a tokenizer found next to the model, if any
    num_parameters: int = 0
    logits_keep: Callable[[torch.Tensor, int], torch.Tensor] | None = None  # (tokens, m) -> last m logits
    # (clean row [1, T], variants [B, T] equal to it before `start`, start, m) -> logits of the last
    # min(m, T - start) positions, reusing the clean row's key/value cache for the shared prefix
    suffix_logits: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor] | None = None

    def last_logits(self, tokens: torch.Tensor, keep: int) -> torch.Tensor:
        """Logits of the last ``keep`` positions, [B, keep, V]."""
        if self.logits_keep is not None:
            return self.logits_keep(tokens, keep)
        out = self.logits(tokens)
        if out.shape[1] < keep:
            raise LengenError(f"{self.description} returns logits of the last position only")
        return out[:, -keep:]

    def check_length(self, length: int, what: str) -> None:
        if self.max_length is not None and length > self.max_length:
            raise LengenError(f"{what} of {length} tokens is longer than the model's context of "
                              f"{self.max_length} tokens ({self.description})")


# -- models ---------------------------------------------------------------------------------------

def lengen_handle(model: Any, task: Task | None = None, description: str = "lengen model") -> ModelHandle:
    """Wrap a ``lengen.model.Transformer``: ids 0..T-1 through the eval-mode ``prepare_ids``.

    Schemes that draw ids at random (``randomized``) get one fixed draw per length, the same for every
    row, so an ablated row differs from its clean row in the ablated token only. ``suffix_logits``
    reuses the clean row's key/value cache for the unchanged prefix (``estimate_shared_rows``).
    """
    model.eval()
    device = next(model.parameters()).device

    def plain_ids(b: int, t: int) -> torch.Tensor:
        ids = torch.arange(t, device=device)[None]
        out: torch.Tensor = prepare_position_ids(model, ids, generator=torch.Generator(device=device).manual_seed(0))
        return out.expand(b, t)

    def logits_keep(tokens: torch.Tensor, keep: int) -> torch.Tensor:
        hidden = model.hidden(tokens, plain_ids(*tokens.shape))
        out: torch.Tensor = model.head(hidden[:, -keep:])
        return out

    def logits(tokens: torch.Tensor) -> torch.Tensor:
        return logits_keep(tokens, tokens.shape[1])

    cached: dict[str, Any] = {}

    def suffix_logits(row: torch.Tensor, variants: torch.Tensor, start: int, keep: int) -> torch.Tensor:
        b, t = variants.shape
        keep = min(keep, t - start)
        if start == 0:
            return logits_keep(variants, keep)
        ids = plain_ids(1, t)
        if cached.get("row") is None or not torch.equal(cached["row"], row):
            cache = KVCache()
            model.hidden(row, ids, cache)
            cached["row"], cached["cache"] = row.clone(), cache
        full: KVCache = cached["cache"]
        prefix = KVCache(keys=[k[:, :, :start].expand(b, -1, -1, -1) for k in full.keys],
                         values=[v[:, :, :start].expand(b, -1, -1, -1) for v in full.values],
                         ids=ids[:, :start].expand(b, -1))
        hidden = model.hidden(variants[:, start:], ids[:, start:].expand(b, -1), prefix)
        out: torch.Tensor = model.head(hidden[:, -keep:])
        return out

    limit = model.positions.max_position()
    return ModelHandle(logits=logits, embedding=model.embed, vocab_size=model.cfg.vocab_size,
                       max_length=limit, description=description, task=task,
                       num_parameters=sum(p.numel() for p in model.parameters()),
                       logits_keep=logits_keep, suffix_logits=suffix_logits)


def hf_handle(model: Any, description: str, tokenizer: Any = None) -> ModelHandle:
    """Wrap a transformers causal LM; only the last position's logits are computed."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def logits_keep(tokens: torch.Tensor, keep: int) -> torch.Tensor:
        out: torch.Tensor = model(input_ids=tokens, logits_to_keep=keep, use_cache=False).logits
        return out

    def logits(tokens: torch.Tensor) -> torch.Tensor:
        return logits_keep(tokens, 1)

    cached: dict[str, Any] = {}

    def suffix_logits(row: torch.Tensor, variants: torch.Tensor, start: int, keep: int) -> torch.Tensor:
        keep = min(keep, variants.shape[1] - start)
        if start == 0:
            return logits_keep(variants, keep)
        from transformers.cache_utils import DynamicCache

        if cached.get("row") is None or not torch.equal(cached["row"], row):
            out = model(input_ids=row, use_cache=True, logits_to_keep=1)
            cached["row"] = row.clone()
            cached["kv"] = [(layer.keys, layer.values) for layer in out.cache.layers]
        b = variants.shape[0]
        cache = DynamicCache(ddp_cache_data=[(k[:, :, :start].expand(b, -1, -1, -1).contiguous(),
                                              v[:, :, :start].expand(b, -1, -1, -1).contiguous())
                                             for k, v in cached["kv"]])
        res: torch.Tensor = model(input_ids=variants[:, start:], cache=cache, use_cache=True,
                                  logits_to_keep=keep).logits
        return res

    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None)
    return ModelHandle(logits=logits, embedding=model.get_input_embeddings(), vocab_size=int(cfg.vocab_size),
                       max_length=int(limit) if limit else None, description=description,
                       tokenizer=tokenizer, num_parameters=sum(p.numel() for p in model.parameters()),
                       logits_keep=logits_keep, suffix_logits=suffix_logits)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0]}" if text else e.__class__.__name__


def load_model(path: str | Path, gguf_file: str | None = None) -> ModelHandle:
    """A lengen checkpoint folder, a Hugging Face model folder, a GGUF file, or a folder with one."""
    path = Path(path)
    if not path.exists():
        raise LengenError(f"model path not found: {path}")
    if path.is_file() and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    if path.is_file():
        raise LengenError(f"model path {path} is a file; give a model folder or a .gguf file")
    if gguf_file is None and ((path / "state.json").is_file() or (path / "checkpoint").is_dir()):
        loaded = load_checkpoint(path)
        return lengen_handle(loaded.model, loaded.task, description=f"lengen checkpoint {path}")
    if gguf_file is None:
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if not (path / "config.json").is_file():
            if len(ggufs) == 1:
                gguf_file = ggufs[0]
            elif len(ggufs) > 1:
                raise LengenError(f"{path} holds several .gguf files ({', '.join(ggufs)}); pick one with --gguf-file")
            else:
                raise LengenError(f"{path} is neither a lengen checkpoint nor a Hugging Face model folder "
                                  "(no state.json, config.json or .gguf file)")
    elif not (path / gguf_file).is_file():
        raise LengenError(f"GGUF file not found: {path / gguf_file}")
    return _load_hf(path, gguf_file)


def _load_hf(path: Path, gguf_file: str | None) -> ModelHandle:
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise LengenError("loading Hugging Face models needs the hf extra: pip install 'lengen[hf]'") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # stderr stays for the one-line errors
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    try:
        # the GGUF de-quantizer draws its own tqdm bar on stderr; errors still surface as exceptions
        with contextlib.redirect_stderr(io.StringIO()):
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, safetensors errors...
        what = f"{path / gguf_file}" if gguf_file else str(path)
        raise LengenError(f"could not load a causal LM from {what}: {_first_line(e)}") from None
    tokenizer = None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), **kwargs)
    except Exception:  # no tokenizer files next to the model: the caller may use the GPT-2 vocab
        tokenizer = None
    name = f"{type(model).__name__} from {path / gguf_file if gguf_file else path}"
    return hf_handle(model, name, tokenizer)


# -- tokenizers -----------------------------------------------------------------------------------

def pick_tokenizer(handle: ModelHandle, which: str = "auto") -> TextTokenizer:
    """``model``: the model folder's tokenizer; ``gpt2``: GPT-2 BPE; ``auto``: model's, else GPT-2."""
    if which not in ("auto", "model", "gpt2"):
        raise LengenError(f"unknown tokenizer {which!r}; known: auto, model, gpt2")
    if which in ("auto", "model") and handle.tokenizer is not None:
        tok = hf_text_tokenizer(handle.tokenizer)
    elif which == "model":
        raise LengenError(f"no tokenizer files next to the model ({handle.description}); use --tokenizer gpt2")
    else:
        tok = gpt2_tokenizer()
    if tok.vocab_size > handle.vocab_size:
        raise LengenError(f"tokenizer {tok.name} has {tok.vocab_size} tokens but the model only "
                          f"{handle.vocab_size}")
    return tok


# -- data (files are read by lengen.text.corpus.read_texts) -----------------------------------------

@dataclass
class Queries:
    """Rows to diagnose: each row's prediction is the one after its last token."""

    tokens: torch.Tensor  # [N, T]
    target: torch.Tensor  # [N]
    ablatable: torch.Tensor  # [N, T] bool
    truth: list[list[int]] | None = None  # ground-truth dependency positions (task data only)
    classes: list[list[int]] | None = None  # interchangeable token ids (substitutions stay inside)
    meta: dict[str, Any] = field(default_factory=dict)


def text_queries(texts: list[str], tok: TextTokenizer, window: int, budget: int, seed: int = 0,
                 max_tokens: int | None = None, scored_per_row: int = 0) -> Queries:
    """Windows of ``window`` tokens from the concatenated documents, ``budget`` scored tokens at most.

    The scored tokens are spread evenly over the stream (a seeded random phase), so a budget smaller
    than the corpus samples the whole corpus rather than its beginning. With ``scored_per_row`` S > 0
    each window scores its last S predictions (``target`` is then [N, S]; see
    ``estimate_shared_rows``): those predictions see between ``window - S + 1`` and ``window`` tokens.
    """
    if scored_per_row < 0 or scored_per_row > window:
        raise LengenError(f"scored tokens per window must be between 0 and --window ({window}), got {scored_per_row}")
    stream: list[int] = []
    for doc in texts:
        if stream:
            stream.extend(tok.separator)
        stream.extend(tok.encode(doc))
        if max_tokens is not None and len(stream) >= max_tokens:
            stream = stream[:max_tokens]
            break
    ids = np.asarray(stream, dtype=np.int64)
    n_targets = len(ids) - window  # scored tokens that have a full window of context
    if n_targets < 1:
        raise LengenError(f"the text has {len(ids)} tokens: too few for a context window of {window}")
    per_row = max(1, scored_per_row)
    count = min(-(-budget // per_row), -(-n_targets // per_row))
    step = n_targets / count
    phase = np.random.default_rng(seed).random() * step
    ends = (window - 1 + np.floor(phase + step * np.arange(count))).astype(np.int64)  # last context token
    rows = ids[ends[:, None] - np.arange(window - 1, -1, -1)[None, :]]
    tokens = torch.from_numpy(rows)
    sep = torch.tensor(tok.separator, dtype=torch.long)

    def ablatable(t: torch.Tensor) -> torch.Tensor:
        # the window's first token is never ablated: causal LMs park attention on the first position of
        # their input (an "attention sink"), so replacing it disturbs every prediction whatever it says
        # (on SmolLM2-135M, 26 of 64 scored tokens listed it as a dependency before this exclusion)
        keep = ~torch.isin(t, sep)
        keep[:, 0] = False
        return keep

    if scored_per_row > 0:
        ends = np.minimum(ends, len(ids) - 2)
        rows = ids[ends[:, None] - np.arange(window - 1, -1, -1)[None, :]]
        tokens = torch.from_numpy(rows)
        target = torch.from_numpy(ids[ends[:, None] + 2 - np.arange(scored_per_row, 0, -1)[None, :]])
        return Queries(tokens=tokens, target=target, ablatable=ablatable(tokens),
                       meta={"corpus_tokens": len(ids), "scored_positions": ends.tolist(),
                             "scored_per_row": scored_per_row})
    return Queries(tokens=tokens, target=torch.from_numpy(ids[ends + 1]),
                   ablatable=ablatable(tokens),
                   meta={"corpus_tokens": len(ids), "scored_positions": ends.tolist()})


def task_queries(task: Task, length: int, samples: int, seed: int = 0, answer: int = 0) -> Queries:
    """The task's answer predictions, with their ground-truth dependency sets.

    ``answer`` picks which answer token of each sample is scored (0: the first; -1: the last), read
    with teacher forcing like every other evaluation: the earlier answer tokens are in the context.
    A row ends at the answer's prediction point (tokens after it cannot matter, attention is causal).
    Positions whose token is the same in every sample (format tokens such as the query) carry no
    information about the sample and are not ablated.
    """
    batch = task.sample(np.random.default_rng(seed), samples, length)
    answers = int(batch.answer_index.shape[1])
    if not -answers <= answer < answers:
        raise LengenError(f"task {task.name} at length {length} has {answers} answer token(s); answer {answer} "
                          "does not exist")
    column = answer % answers
    where = batch.answer_index[:, column]
    if not bool((where == where[0]).all()):
        raise LengenError(f"task {task.name}: answer {answer} sits at varying positions across samples, which "
                          "diagnose does not support")
    q = int(where[0])
    tokens = batch.tokens[:, : q + 1]
    constant = (tokens == tokens[:1]).all(dim=0, keepdim=True).expand_as(tokens)
    truth = [[int(d) for d in row if d >= 0] for row in batch.dependencies[:, column, :]]
    return Queries(tokens=tokens, target=batch.targets[:, q], ablatable=~constant, truth=truth,
                   classes=token_classes(task), meta={"task": task.name, "length": length})


def token_classes(task: Task) -> list[list[int]]:
    """Groups of tokens with the same role, from the task's token names without their digits.

    ``n0 .. n7`` (background) form one group and ``s0, s1`` (planted symbols) another; ``0, 1`` (bits)
    one group and ``M`` its own. A substitution inside a group is one the task's sampler could have
    made: replacing a planted symbol by another can change the answer, replacing a background token by
    another cannot, which is exactly the tasks' ground-truth notion of dependence.
    """
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(task.token_names()):
        groups.setdefault(name.rstrip("0123456789"), []).append(i)
    return list(groups.values())
