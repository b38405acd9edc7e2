#!/bin/bash
# end to end: this branch's spool, main's spool (ade2bff) and llama.cpp alternating (bench/prefill/run.py)
cd /work/wt-qprefill
uptime
python3 bench/prefill/run.py --reps ${REPS:-3} --lengths ${LEN:-512} --spool-base /work/bench-files/qprefill/spool-main-ade2bff ${MODEL:-/work/bench-files/llama-3.2-1b-q4_k_m.gguf}
uptime
