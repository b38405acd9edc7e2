#!/usr/bin/env bash
# Every benchmark in one command (`make bench`), or the ones named:
#   bash bench/run.sh [engine] [streaming] [kv] [server] [batch]
# Models are generated once into bench/out/ (random weights, real shapes:
# tools/gen_synthetic_model.py; SmolLM2 dequantised by tools/dequant_gguf.py) and reused.
# Peers and limits measured in the same runs: llama.cpp (llama-cpp-python, installed here
# if missing: it builds from source, ~15 minutes on 2 cores), fio, a memory-bandwidth probe.
# Each benchmark prints Markdown rows; docs/benchmarks.md holds the results with their
# machine and date. `streaming` needs root (drops the page cache, makes a cgroup).
# Disk: ~19 GB in bench/out (the 8B shape is 16 GB). Time: roughly an hour on 2 cores
# (the sum of the parts timed in docs/benchmarks.md; the whole was not timed).
set -euo pipefail
cd "$(dirname "$0")/.."
SPOOL=build/bin/spool
OUT=bench/out
mkdir -p "$OUT"
which=("$@")
[ ${#which[@]} -eq 0 ] && which=(engine streaming kv server batch)

need_py() {  # module, pip spec
  python3 -c "import $1" 2>/dev/null && return 0
  echo "bench: installing $2 (PyPI)"
  python3 -m pip install -q "$2" 2>/dev/null || python3 -m pip install -q --break-system-packages "$2"
}
model() {  # shape → path of its bf16 GGUF, generated on first use
  local path="$OUT/$1-bf16.gguf"
  [ -s "$path" ] || python3 tools/gen_synthetic_model.py --shape "$1" --format gguf --out "$path" >&2
  echo "$path"
}

need_py numpy numpy
need_py gguf gguf
for b in "${which[@]}"; do
  echo "== bench: $b ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  case "$b" in
    engine)
      need_py llama_cpp llama-cpp-python==0.3.36
      smol="$OUT/smollm2-135m-bf16.gguf"
      [ -s "$smol" ] || python3 tools/dequant_gguf.py models/SmolLM2-135M-Instruct.Q4_1.gguf "$smol"
      python3 bench/engine/run.py --reps 3 --gen 16 --prompt 128 "$smol" "$(model llama-3.2-1b)" ;;
    streaming)
      need_py llama_cpp llama-cpp-python==0.3.36
      model llama-3.2-1b >/dev/null; model llama-3.1-8b >/dev/null
      python3 bench/streaming/run.py --spool "$SPOOL" --runs 3 --prefill-runs 1 ;;
    kv)
      need_py llama_cpp llama-cpp-python==0.3.36
      python3 bench/kv/run.py --spool "$SPOOL" --model "$(model llama-3.2-1b)" \
        --contexts 1024,8192,32768,102400 --n 3 --budget 2G --llamacpp ;;
    server)
      python3 bench/server/run.py --spool "$SPOOL" --model "$(model llama-3.2-1b)" --budget 1.2G \
        --clients 1,4,16 --max-tokens 16 --json "bench/server/results-$(date -u +%F).json" ;;
    batch)
      python3 bench/batch/run.py --spool "$SPOOL" --model "$(model llama-3.1-8b)" --budget 4G \
        --batches 1,4,16,64 --max-tokens 8 --json "bench/batch/results-8b-$(date -u +%F).json" ;;
    *) echo "bench: unknown benchmark '$b' (engine, streaming, kv, server, batch)" >&2; exit 2 ;;
  esac
done
