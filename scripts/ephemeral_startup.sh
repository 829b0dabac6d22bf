#!/usr/bin/env bash
# Start-to-ready time of `keyward serve --ephemeral`: from the spawn to its
# JSON line on stdout, over N starts (default 20; the first may build the
# template database). Prints each time and the median, in milliseconds.
#   bash scripts/ephemeral_startup.sh [path/to/keyward] [N]
set -euo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}/release/keyward}
runs=${2:-20}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export RUST_LOG=${RUST_LOG:-warn}
times=()
for _ in $(seq "$runs"); do
  start=$(date +%s%N)
  coproc KW { exec "$bin" serve --ephemeral; }
  read -r line <&"${KW[0]}"
  ready=$(date +%s%N)
  pid=$KW_PID
  ms=$(( (ready - start) / 1000000 ))
  times+=("$ms")
  echo "ready in ${ms} ms: $line"
  kill -TERM "$pid"
  wait "$pid"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "median of ${runs} starts: ${median} ms (min $(echo "$sorted" | head -1), max $(echo "$sorted" | tail -1))"
