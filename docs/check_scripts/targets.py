import json, sys, numpy as np
from lengen.check.dependence import Dependence
from lengen.check.run import spearman, summarize_dependence
from lengen.check.position_loss import bootstrap_ci
path, n = sys.argv[1], int(sys.argv[2])
dep = Dependence.concat([Dependence.from_dict(p) for p in json.load(open(path))])
S = len(dep.k)
print(f"{S} tokens, {dep.forward_tokens} forward tokens ({dep.forward_tokens/S:.0f} per scored token)")
for m in sorted(dep.damage):
    inside = dep.reach <= m
    if m < dep.context and inside.any():
        d = dep.damage[m][inside]
        print(f"  m={m}: {inside.sum()} tokens inside, median damage {np.median(d):+.3f} (95% CI {bootstrap_ci(d, stat=np.median)[0]:+.3f}, {bootstrap_ci(d, stat=np.median)[1]:+.3f}), share > 0.1: {(d>0.1).mean():.2f}")
d = dep.damage_at_reach
print(f"  truncated to its own reach: median {np.median(d):+.3f} CI {bootstrap_ci(d, stat=np.median)}, mean {d.mean():+.3f}")
rng = np.random.default_rng(0)
for m in (8, 16, n):
    if m in dep.damage:
        r = spearman(dep.reach, dep.damage[m])
        boots = [spearman(dep.reach[i], dep.damage[m][i]) for i in rng.integers(0, S, (1000, S))]
        lo, hi = np.nanquantile(boots, [0.025, 0.975])
        print(f"  spearman(reach, damage({m})) = {r:.2f} (95% CI {lo:.2f}, {hi:.2f})")
s1 = summarize_dependence(dep, n)
for k in ("far_gain", "far_gain_ci", "share_needing_beyond_n", "share_needing_beyond_n_ci", "needing_chunks_median", "needing_chunks_median_ci", "mean_damage_by_width"):
    print(" ", k, s1[k])
print("  k:", dep.k.tolist()); print("  reach:", dep.reach.tolist())
