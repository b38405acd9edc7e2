#!/bin/bash
# A/B of the quantised prefill kernels: two bench_prefill binaries (e.g. main's and this
# tree's) alternating round by round in one timed run, with the load average before each.
# Usage (through /work/bin/bench-run):
#   bench/kernels/ab_prefill_quant.sh BASE_BIN NEW_BIN ROUNDS [bench_prefill args...]
set -u
base=$1 new=$2 rounds=$3
shift 3
echo "# $(date -u +%FT%TZ) $(uname -n) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for ((r = 1; r <= rounds; r++)); do
  for which in base new; do
    bin=$base
    [ "$which" = new ] && bin=$new
    echo "## round $r $which ($bin) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$bin" "$@" --ctx "" | grep -v '^peak' || true
  done
done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
