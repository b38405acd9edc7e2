#!/bin/bash
# Issue 15 benchmarks (docs/benchmarks.md, "Qwen3-Next-80B-A3B shape"). As root (cgroup v1
# memory caps, drop_caches), each step through /work/bin/bench-run when it exists:
#
#   bench/qwen3next/run.sh decode 4G      # decode under --mem-budget 4G vs llama.cpp in a 4G cap
#   bench/qwen3next/run.sh decode 2321M   # the 48-layer model's per-layer expert-cache share at 4G
#   bench/qwen3next/run.sh chat           # second-turn TTFT, spool serve vs llama_cpp.server
#
# Models (made when missing, tools/gen_synthetic_model.py): the first 24 (decode) and 4 (chat)
# of Qwen3-Next-80B-A3B's 48 layers, Q4_0, in $MODEL_DIR (default /work/bench-files/q3n).
# Results go to $OUT (default bench/qwen3next/results-<date>).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${MODEL_DIR:-/work/bench-files/q3n}
OUT=${OUT:-$ROOT/bench/qwen3next/results-$(date -u +%F)}
SPOOL=${SPOOL:-$ROOT/build/bin/spool}
RUN=""
[ -x /work/bin/bench-run ] && RUN=/work/bin/bench-run
mkdir -p "$OUT" "$D"
case "${1:-}" in
  decode)
    B=${2:?budget, e.g. 4G}
    f=$D/qwen3next-80b-a3b-l24-q4_0-res.gguf
    [ -f "$f" ] || python3 "$ROOT/tools/gen_synthetic_model.py" --shape qwen3next-80b-a3b --layers 24 \
      --residual-scale 0.002 --out "$f"
    $RUN python3 "$ROOT/bench/moe/run.py" --spool "$SPOOL" --model-dir "$D" --out "$OUT" --models qwen3next-l24 \
      --budgets "$B" --runs "${RUNS:-3}" --tokens 32 --llama-tokens "${LLAMA_TOKENS:-4}" --fio-seconds 6 \
      --results "$OUT/decode-$B.json" > "$OUT/decode-$B.md" 2> "$OUT/decode-$B.log"
    cat "$OUT/decode-$B.md" ;;
  chat)
    f=$D/qwen3next-80b-a3b-l4-q4_0-res.gguf
    [ -f "$f" ] || python3 "$ROOT/tools/gen_synthetic_model.py" --shape qwen3next-80b-a3b --layers 4 \
      --residual-scale 0.002 --out "$f"
    $RUN python3 "$ROOT/bench/qwen3next/chat_turn2.py" --model "$f" --spool "$SPOOL" --runs "${RUNS:-3}" \
      --user-tokens 4000 --answer-tokens 16 --threads 2 --out "$OUT/chat" > "$OUT/chat.md" 2> "$OUT/chat.log"
    cat "$OUT/chat.md" ;;
  *) echo "usage: $0 decode BUDGET | chat" >&2; exit 2 ;;
esac
