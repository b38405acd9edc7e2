#!/bin/bash
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2 3; do /work/bench-files/kquant/bench_prefill-peak --seconds 0.3 --ctx "" --types q4_k --only-tiles 1 --int8-peak 1; done
echo "# end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
