"""Diagnose: how many past tokens does each prediction need, and how far back are they?"""

from lengen.diagnose.ablation import (
    AblationConfig,
    DependencyEstimate,
    estimate_dependencies,
    frequent_tokens,
    truncation_profile,
)

__all__ = ["AblationConfig", "DependencyEstimate", "estimate_dependencies", "frequent_tokens",
           "truncation_profile"]
