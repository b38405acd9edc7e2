#!/bin/bash
# A/B of spool binaries on one model: decode tok/s of `spool run`, binaries alternating
# round by round (noise on a shared machine hits all of them), load average recorded.
#   bench/engine/ab_decode.sh MODEL ROUNDS BINARY...
# Prints "round binary tok/s load1m" lines; take the median per binary.
set -euo pipefail
model=$1 rounds=$2
shift 2
for i in $(seq 1 "$rounds"); do
  for b in "$@"; do
    r=$("$b" run "$model" --prompt-ids 1000,1001,1002,1003 -n 16 --temp 0 --ignore-eos --threads 2 --ctx 64 \
          --json --mem-budget 8G 2>/dev/null |
        python3 -c "import json,sys; print(round(json.load(sys.stdin)['stats']['decode_tokens_per_s'],2))")
    echo "$i $b $r $(cut -d' ' -f1 /proc/loadavg)"
  done
done
