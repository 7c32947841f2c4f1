#!/usr/bin/env bash
# Instructions per HTTP request of our session layer (on MemoryStore) and of
# tower-sessions' (on its MemoryStore), counted by callgrind: rates swing on
# shared machines, instruction counts do not. Each app serves N1 and then N2
# requests per connection; the difference of the totals over the difference
# of the requests is the cost of one request, start-up cancelled out. The
# app without sessions, counted the same way, is taken off both: what is
# left is each layer's own share. Fails if ours is over LIMIT times theirs
# on the workload where every request writes; prints the read-mostly one too.
#
#   .ci/instructions.sh [path/to/session-bench]   (built --release --features compare)
set -euo pipefail
bin=${1:-target/release/session-bench}
limit=${SESSION_INSTRUCTIONS_LIMIT:-0.75}
connections=4
n1=100
n2=600
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Total instructions of one run: `imp` serving `n` requests per connection
# of the workload `mix`.
count() {
  local imp=$1 n=$2 log="$work/$1-$2.log"
  valgrind --tool=callgrind --callgrind-out-file="$work/$imp-$n.out" \
    "$bin" --implementations "$imp" --http-requests "$n" --connections "$connections" \
    --http-mix "$mix" --backends memory --rounds 1 >/dev/null 2>"$log" || {
      echo "callgrind run of $imp ($n requests) failed:" >&2
      tail -20 "$log" >&2
      exit 1
    }
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log" | tail -1
}

per_request() {
  local imp=$1 a b
  mix=$2
  a=$(count "$imp" $n1)
  b=$(count "$imp" $n2)
  echo $(( (b - a) / ((n2 - n1) * connections) ))
}

# Prints the counts of workload $1; leaves its ratio in $ratio.
measure() {
  local none ours tower ours_share tower_share
  none=$(per_request none "$1")
  ours=$(per_request ours "$1")
  tower=$(per_request tower-sessions "$1")
  ours_share=$(( ours - none ))
  tower_share=$(( tower - none ))
  ratio=$(awk -v o="$ours_share" -v t="$tower_share" 'BEGIN { printf "%.3f", o / t }')
  echo "instructions per HTTP request ($1, MemoryStore, callgrind, $connections connections):"
  echo "  app without sessions      $none"
  echo "  with our layer            $ours (layer's share $ours_share)"
  echo "  with tower-sessions       $tower (layer's share $tower_share)"
  echo "  ours / tower-sessions     $ratio"
}

# For information: the read-mostly workload (19 reads per write). Under
# valgrind SHA-256 runs its portable code (about 3,500 instructions, a few
# hundred with the CPU's SHA instructions), one per request, and a read
# does little else: see BENCHMARKS.md.
measure read-mostly
# The gate: every request writes (the workload BENCHMARKS.md has counted).
measure writes
echo "  limit                     $limit"
if awk -v r="$ratio" -v l="$limit" 'BEGIN { exit !(r > l) }'; then
  echo "FAILED: our layer costs more than $limit x tower-sessions' instructions per request" >&2
  exit 1
fi
