import sys, numpy as np, torch, time
torch.set_num_threads(1)
from lengen.check.run import dependence_config, lengen_lm, _samples
from lengen.check.shorttrain import train_small, SmallLM
from lengen.check.dependence import measure
from lengen.check import data as D
rule, width, stride = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps=int(sys.argv[4]) if len(sys.argv)>4 else 300
n=32; dist=2*n
rng=np.random.default_rng(0)
def stream(size):
    x=rng.integers(0,2 if rule=="bmaj" else 16,size=size); follow=rng.random(size)<0.7
    for t in range(dist+stride*(width-1), size):
        if follow[t]:
            w=x[t-dist-stride*np.arange(width)]
            x[t]= int(w[0]) if rule=="copy" else (int((w%2).sum()) if rule=="count" else int((w%2).sum()*2>width))
    return x.tolist()
docs=[stream(32*n) for _ in range(200_000//(32*n))]
docs=D.Documents(texts=[], id_lists=docs, digest="x", source="x")
st=D.tokenize(docs,None,0,0,"ids")
t=time.time()
ref=SmallLM(position="rope", label="reference", steps=steps, batch_size=2)
model,stats=train_small(ref, st.train, st.vocab_size, 8*n, 0, False, None)
lm=lengen_lm(model, context=8*n)
cfg=dependence_config(n); c=4*n+4
rows=_samples(st.validation, 48, c+1, 0)
donors=torch.stack([_samples(st.validation, 48, c, 3+i) for i in range(3)],1)
dep=measure(lm, rows[:,:-1], rows[:,-1], cfg, donors=donors)
far=dep.damage[n]>0.1
print(sys.argv[1:], "train loss", round(stats["train_loss_last50"],3), "far gain", round(float(dep.damage[n].mean()),3), "needing", int(far.sum()), "k", dep.k[far].tolist(), "median tok", np.median(dep.k[far]*4) if far.any() else None, f"{time.time()-t:.0f}s")
