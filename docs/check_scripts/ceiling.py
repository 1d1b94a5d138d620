"""Issue 19, session 10: the joint set (replacement + truncation) and the ceiling of target 2.

Reads what smol_step1.py saved (no model needed, seconds). For each token, three reaches:
- replacement: the sufficiency set's reach, as `lengen check` measures it;
- truncation: the smallest profiled width from which every wider width loses <= 0.1 nats (the reference's own reach);
- joint: the larger of the two (a set that passes both a replacement test and a truncation test at its reach).
Prints target 1 (median damage inside m), target 2 (Spearman with damage at 8/16/32, bootstrap 95% CI) and the
agreement of "reach > m" with "damage(m) > 0.1" (precision, recall).
    PYTHONPATH=src python docs/check_scripts/ceiling.py /tmp/smol_kjv_32_384_D1.json /tmp/smol_shakespeare_32_384_D1.json
"""
import json, sys
import numpy as np
from lengen.check.dependence import Dependence
from lengen.check.run import spearman

for path in sys.argv[1:]:
    dep = Dependence.concat([Dependence.from_dict(p) for p in json.load(open(path))])
    S, widths = len(dep.k), sorted(dep.damage)
    trunc = np.array([next(w for w in widths if all(dep.damage[v][i] <= 0.1 for v in widths if v >= w)) for i in range(S)])
    joint = np.maximum(dep.reach, trunc)
    print(f"{path}: {S} tokens; joint reach equals the replacement reach for {(joint == dep.reach).mean():.2f}")
    rng = np.random.default_rng(0)
    for name, r in (("replacement", dep.reach), ("truncation", trunc), ("joint", joint)):
        t1 = [f"m={m}: {np.median(dep.damage[m][r <= m]):+.3f} ({(r <= m).sum()})" for m in (4, 8, 16) if (r <= m).sum() > 2]
        t2 = []
        for m in (8, 16, 32):
            boots = [spearman(r[i], dep.damage[m][i]) for i in rng.integers(0, S, (500, S))]
            t2.append(f"{spearman(r, dep.damage[m]):.2f} [{np.nanquantile(boots, .025):.2f}, {np.nanquantile(boots, .975):.2f}]")
        agree = []
        for m in (8, 16, 32):
            said, true = r > m, dep.damage[m] > 0.1
            tp = (said & true).sum()
            agree.append(f"m={m}: P {tp / max(said.sum(), 1):.2f} R {tp / max(true.sum(), 1):.2f}")
        print(f"  {name:11s} target 1 {'; '.join(t1)} | target 2 at 8/16/32: {' / '.join(t2)} | {'; '.join(agree)}")
