"""The go / no-go rule of `lengen check`, from the numbers of steps 1-3.

1. **Does the data need context beyond N?** ``far_gain``: the mean log-probability the reference loses
   when its context is truncated to N tokens (nats per token; step 1's truncation profile). If its
   interval's lower end exceeds ``FAR_GAIN`` a model trained at N cannot use what the longer inputs
   hold: **no-go at N**, with the kind of dependence from the sufficiency sets: *sparse* when the p90
   of the tokens a set holds beyond the local block is at most ``DENSE_TOKENS``, else *dense*.
2. Otherwise, **does a short-trained model keep its loss at longer inputs?** ``rise``: loss at
   [4N, 8N) minus loss at [N/2, N) of the same windows (step 2). The baseline (RoPE) holding
   (rise <= ``HOLD``) is **go**; else the positional change with the smallest rise that holds is
   **go with change X**; else **no-go** (positional failure).
3. With the user's model (step 3): the same rise for the model beyond its declared context, as is and
   with each RoPE scaling; the best one that holds is what to try on that model.

The thresholds are calibrated on the synthetic corpora (``lengen.check.synthetic``; docs/check.md
gives the command and the values each corpus produced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAR_GAIN = 0.05  # nats per token lost by truncating to N: above it the data needs context beyond N
HOLD = 0.05  # nats: a loss rise at the longest evaluated range at most this keeps the loss
DENSE_TOKENS = 8  # p90 of tokens a sufficiency set holds beyond the local block: above it, dense


@dataclass
class Verdict:
    decision: str  # go | go with change | no-go
    change: str | None
    reason: str
    numbers: dict[str, Any]
    next_steps: list[str] = field(default_factory=list)
    step2_agrees: bool | None = None

    @property
    def headline(self) -> str:
        return f"{self.decision}: {self.change}" if self.change else self.decision

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "change": self.change, "headline": self.headline, "reason": self.reason,
                "numbers": self.numbers, "next_steps": self.next_steps, "step2_agrees": self.step2_agrees,
                "thresholds": {"far_gain_nats": FAR_GAIN, "hold_nats": HOLD, "dense_tokens": DENSE_TOKENS}}


def decide(context: int, step1: dict[str, Any], step2: dict[str, Any], step3: dict[str, Any] | None) -> Verdict:
    """The verdict (module docstring), with step 3's finding first among the next steps."""
    v = _decide(context, step1, step2)
    if step3:
        v.numbers["existing_model_rise"] = {k: s["rise"] for k, s in step3.items()}
        keep = [k for k, s in step3.items() if s["rise"] <= HOLD]
        if keep:
            best3 = "as is" if "as is" in keep else min(keep, key=lambda k: step3[k]["rise"])
            v.next_steps.insert(0, f"your model beyond its context: {best3} keeps the loss "
                                   f"(rise {step3[best3]['rise']:+.3f} nats)")
        else:
            v.next_steps.insert(0, "your model beyond its context: no RoPE scaling tried keeps the loss "
                                   "(fine-tune at the longer length, e.g. with PoSE)")
    return v


def _decide(context: int, step1: dict[str, Any], step2: dict[str, Any]) -> Verdict:
    """``step1``: far_gain, far_gain_ci, dense_tokens_p90; ``step2``: {label: {rise, rise_ci, gap_to_reference,
    gap_ci}} with the baseline first."""
    n = context
    numbers: dict[str, Any] = {"far_gain": step1["far_gain"], "far_gain_ci": step1["far_gain_ci"],
                               "dense_tokens_p90": step1["dense_tokens_p90"],
                               "rise": {k: v["rise"] for k, v in step2.items()},
                               "rise_ci": {k: v["rise_ci"] for k, v in step2.items()}}
    labels = list(step2)
    baseline = labels[0]
    holds = [lb for lb in labels if step2[lb]["rise"] <= HOLD]
    gaps = {lb: step2[lb]["gap_to_reference"] for lb in labels}
    numbers["gap_to_reference"] = gaps
    if step1["far_gain_ci"][0] > FAR_GAIN:
        dense = step1["dense_tokens_p90"] > DENSE_TOKENS
        kind = "dense" if dense else "sparse"
        v = Verdict("no-go", None,
                    f"the data needs context beyond N = {n}: truncating to {n} tokens costs "
                    f"{step1['far_gain']:.3f} nats per token (95% CI {step1['far_gain_ci'][0]:.3f}-"
                    f"{step1['far_gain_ci'][1]:.3f}, threshold {FAR_GAIN}); the dependence is {kind} "
                    f"(p90 {step1['dense_tokens_p90']:g} tokens beyond the local block, threshold {DENSE_TOKENS})",
                    numbers)
        v.next_steps = (["train or fine-tune at a context that covers the reach (see the reach histogram)",
                         "few far tokens matter: retrieval or position coupling can bring them close"] if not dense else
                        ["train or fine-tune at the full input length: many far tokens matter, so no short-context "
                         "trick recovers them", "or shorten the inputs (summaries, chunking) so they fit N"])
        # step 2 agrees when no short model reaches the long-trained reference beyond N
        v.step2_agrees = all(step2[lb]["gap_ci"][0] > 0 for lb in labels)
        return v
    if baseline in holds:
        v = Verdict("go", None, f"predictions need little beyond N = {n} (truncation costs {step1['far_gain']:.3f} "
                    f"nats per token) and {baseline} trained at {n} keeps its loss to 8N (rise "
                    f"{step2[baseline]['rise']:+.3f} nats, threshold {HOLD})", numbers)
        v.next_steps = ["train at N as planned; recheck if the inputs' structure changes"]
    elif holds:
        best = min(holds, key=lambda lb: step2[lb]["rise"])
        v = Verdict("go with change", best,
                    f"predictions need little beyond N = {n}, but {baseline} trained at {n} loses "
                    f"{step2[baseline]['rise']:+.3f} nats at 4N-8N while {best} keeps it "
                    f"({step2[best]['rise']:+.3f}, threshold {HOLD})", numbers)
        v.next_steps = [f"train with {best}; confirm on your model size with 3 seeds"]
    else:
        best = min(labels, key=lambda lb: step2[lb]["rise"])
        v = Verdict("no-go", None, f"predictions need little beyond N = {n}, but no tried scheme keeps the loss "
                    f"at 4N-8N (best: {best}, rise {step2[best]['rise']:+.3f}, threshold {HOLD})", numbers)
        v.next_steps = ["try NoPE, FIRE or randomized positions (lengen run with the text task)",
                        "or train at the longer length"]
    v.step2_agrees = bool(holds)
    return v
