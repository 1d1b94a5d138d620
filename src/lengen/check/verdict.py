"""The go / no-go rule of `lengen check`, from the numbers of steps 1-3.

1. **Does the data need context beyond N?** ``far_gain``: the mean log-probability the reference loses
   when its context is truncated to N tokens (nats per token), and ``share_needing_beyond_n``: the share
   of predictions that lose more than 0.1 nats (step 1's truncation profile). If the lower end of either
   interval exceeds its threshold (``FAR_GAIN``, ``FAR_SHARE``), a model trained at N cannot use what
   the longer inputs hold: **no-go at N**, with the kind of dependence from the sufficiency sets of the
   predictions that need the far context: *sparse* when the median number of chunks (of N/8 tokens)
   their sets hold beyond the local block is at most ``DENSE_CHUNKS``, else *dense*.
2. Otherwise, **does a short-trained model keep its loss at longer inputs?** ``rise``: loss of the
   tokens at positions [4N, 8N) minus the loss of the same tokens read with only their last N tokens
   (step 2; what reading the longer input costs, paired token by token). The baseline (RoPE) holding
   (rise <= ``HOLD``) is **go**; else the positional change with the smallest rise that holds is
   **go with change X**; else **no-go** (positional failure).
3. With the user's model (step 3): the rise at [N, 2N) beyond its (declared or stated) context N, as
   is and with each RoPE scaling, against the unchanged model reading the last N tokens; the best one
   that holds is what to try on that model.

The thresholds are calibrated on the synthetic corpora (``lengen.check.synthetic``; docs/check.md
gives the command and the values each corpus produced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAR_GAIN = 0.05  # nats per token lost by truncating to N: above it the data needs context beyond N
FAR_SHARE = 0.05  # share of predictions losing > 0.1 nats when truncated to N: above it, the same
HOLD = 0.05  # nats: a loss rise at the longest evaluated range at most this keeps the loss
DENSE_CHUNKS = 2  # median chunks (N/8 tokens each) in the sufficiency sets of the far-needing predictions:
# above it, dense. Calibration (docs/check.md): the far copy corpus's sets hold 1 chunk, the dense corpus's 12


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
                "thresholds": {"far_gain_nats": FAR_GAIN, "far_share": FAR_SHARE, "hold_nats": HOLD,
                               "dense_chunks": DENSE_CHUNKS}}


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
    numbers: dict[str, Any] = {key: step1[key] for key in ("far_gain", "far_gain_ci", "share_needing_beyond_n",
                                                            "share_needing_beyond_n_ci", "dense_tokens_p90",
                                                            "needing_tokens_median", "needing_chunks_median",
                                                            "needing_chunks_median_ci")}
    numbers.update({"rise": {k: v["rise"] for k, v in step2.items()},
                    "rise_ci": {k: v["rise_ci"] for k, v in step2.items()}})
    labels = list(step2)
    baseline = labels[0]
    holds = [lb for lb in labels if step2[lb]["rise"] <= HOLD]
    gaps = {lb: step2[lb]["gap_to_reference"] for lb in labels}
    numbers["gap_to_reference"] = gaps
    if step1["far_gain_ci"][0] > FAR_GAIN or step1["share_needing_beyond_n_ci"][0] > FAR_SHARE:
        dense = step1["needing_chunks_median"] > DENSE_CHUNKS
        kind = "dense" if dense else "sparse"
        v = Verdict("no-go", None,
                    f"the data needs context beyond N = {n}: truncating to {n} tokens costs "
                    f"{step1['far_gain']:.3f} nats per token (95% CI {step1['far_gain_ci'][0]:.3f}-"
                    f"{step1['far_gain_ci'][1]:.3f}, threshold {FAR_GAIN}) and "
                    f"{step1['share_needing_beyond_n']:.0%} of predictions lose more than 0.1 nats (95% CI "
                    f"{step1['share_needing_beyond_n_ci'][0]:.0%}-{step1['share_needing_beyond_n_ci'][1]:.0%}, "
                    f"threshold {FAR_SHARE:.0%}); the dependence is {kind} (median "
                    f"{step1['needing_chunks_median']:g} chunks of {n // 8} tokens beyond the local block in the "
                    f"sufficiency sets of those predictions, 95% CI {step1['needing_chunks_median_ci'][0]:g}-"
                    f"{step1['needing_chunks_median_ci'][1]:g}, threshold {DENSE_CHUNKS})",
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
