"""Training windows with holes: tokens deleted from a window's beginning, every other token keeping its id.

Why: the sufficiency measure of the language analysis (``lengen.text.sufficiency``) restores a few
distant tokens into the last ``near`` tokens and removes every other distant token, each kept token at
its own position id. A reference trained only on contiguous windows never saw such a context; on planted
text its reading of one drifts from the ideal as the restored set grows (docs/language.md, "Planted k =
3"). ``train.holes: h`` puts such contexts in the training data: each window is drawn ``h`` tokens
longer, then d tokens (d uniform in 0..h, so some windows are whole) are deleted at random positions
before a random cut, and the first ``h - d`` tokens are dropped so that every row keeps the training
length. Past the cut the window is contiguous, like the near block; ids are the tokens' places in the
drawn window minus the tokens dropped at its front, so a whole window has ids 0..T-1 as without holes.

Every kept position still predicts the text's next token (also where that token was deleted), so the
model learns to predict from a context with gaps what it predicts from the whole text. Only tasks that
score every next token (``text``) accept holes.
"""

from __future__ import annotations

import numpy as np
import torch

from lengen.errors import ConfigError
from lengen.tasks import Batch


def holed_length(length: int, holes: int) -> int:
    """The length to draw so that a window keeps ``length`` tokens after ``holes`` are removed."""
    return length + holes


def delete_tokens(batch: Batch, holes: int, rng: np.random.Generator) -> Batch:
    """``batch`` of ``T + holes`` tokens -> ``T`` tokens per row, with up to ``holes`` of them deleted from
    each row's beginning (module docstring). ``rng`` draws the deletions (the training data stream)."""
    b, drawn = batch.tokens.shape
    length = drawn - holes
    if holes < 0 or length < 2:
        raise ConfigError(f"train.holes: cannot delete {holes} of {drawn} tokens and keep a window")
    if batch.answer_index.shape[1] != drawn - 1:
        raise ConfigError("train.holes needs a task that scores every next token (text)")
    keep = np.empty((b, length), dtype=np.int64)
    offset = np.empty(b, dtype=np.int64)
    for row in range(b):
        d = int(rng.integers(0, holes + 1))
        front = holes - d
        cut = int(rng.integers(front + d, drawn)) if d else front  # deletions lie in [front, cut)
        gone = front + rng.choice(cut - front, d, replace=False) if d else np.empty(0, dtype=np.int64)
        kept = np.setdiff1d(np.arange(front, drawn), gone)
        keep[row], offset[row] = kept, front
    index = torch.from_numpy(keep)
    ids = torch.gather(batch.position_ids, 1, index) - torch.from_numpy(offset)[:, None]
    return Batch(
        tokens=torch.gather(batch.tokens, 1, index),
        targets=torch.gather(batch.targets, 1, index),  # the text's next token, deleted or not
        position_ids=ids,
        answer_index=torch.arange(length - 1).expand(b, length - 1).contiguous(),
        dependencies=torch.empty(b, length - 1, 0, dtype=torch.long),
        prompt_length=batch.prompt_length,
    )
