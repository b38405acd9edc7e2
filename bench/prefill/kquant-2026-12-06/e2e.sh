#!/bin/bash
# kquant end to end: this branch's spool (build/bin/spool) vs main's spool vs llama.cpp, alternating.
cd /work/wt-kquant
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) lengths $1 reps $2"
python3 bench/prefill/run.py --reps $2 --lengths $1 --spool-base /work/bench-files/kquant/spool-main /work/bench-files/llama-3.2-1b-q4_k_m.gguf
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
