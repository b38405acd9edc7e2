
import json, sys, time
import llama_cpp
import llama_cpp.llama_cpp as llama_capi
# Weights stay in the mmap: no runtime repacking of Q4_0 into anonymous buffers
# (llama.cpp's default on AVX2 copies every Q4_0 matrix, which cannot stream under a cap).
_defaults = llama_capi.llama_model_default_params
def _no_repack():
    p = _defaults(); p.use_extra_bufts = False; return p
llama_capi.llama_model_default_params = _no_repack
# argv: model, prompt ids, ids to feed one per step (comma-separated), threads
path, ids, feed, threads = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], [int(x) for x in sys.argv[3].split(",")], int(sys.argv[4])
t_load = time.time()
m = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=threads, use_mmap=True, verbose=False, n_batch=512)
t0 = time.time(); m.eval(ids); t1 = time.time()
times = []
for tok in feed:
    t = time.time(); m.eval([tok]); times.append(time.time() - t)
print(json.dumps({"load_s": t0 - t_load, "prefill_s": t1 - t0, "decode_s": sum(times), "decode_steps": len(feed),
                  "decode_tokens_per_s": len(feed) / sum(times)}))
