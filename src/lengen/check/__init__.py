"""`lengen check`: the practitioner's go / no-go on their own data and model (docs/check.md).

data -> dependence (step 1) -> shorttrain + position_loss (step 2) -> existing (step 3) -> verdict -> report.
"""
