#!/usr/bin/env bash
# Where a bridge's heap goes per idle stream, and what is left after the streams close:
# valgrind's massif on a bridge built with the system allocator (massif sees malloc only),
# snapshots taken by benches/hold_streams.py (idle / N streams open / 20 s after closing).
#
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     cargo build --release -p bridge --no-default-features --bin bridge
#   cargo build --release -p agent-stub --bin agent-stub
#   bash benches/massif.sh target/release sub 2000        # or: run 2000
#   ms_print /tmp/ms.sub.open | less                      # the allocation tree
set -euo pipefail
bin=$1 mode=$2 streams=$3 port=${4:-18400}
ulimit -n 20000
tmp=$(mktemp -d)
"$bin/agent-stub" --listen 127.0.0.1:0 >"$tmp/stub" 2>/dev/null &
stub=$!
for _ in $(seq 50); do grep -q 'listening on' "$tmp/stub" && break; sleep 0.2; done
agent=$(grep -o 'http://[0-9.:]*' "$tmp/stub" | head -1)
RUST_LOG=warn valgrind --tool=massif --vgdb=yes --massif-out-file="$tmp/massif.out" \
  "$bin/bridge" --listen "127.0.0.1:$port" --allow-anonymous --rate-limit-chat off \
  --rate-limit-read off --max-streams-per-identity 1000000 --max-streams 1000000 \
  --max-connections 1000000 --agent "bench=$agent" >"$tmp/bridge" 2>&1 &
bridge=$!
for _ in $(seq 300); do grep -q 'listening on' "$tmp/bridge" && break; sleep 0.2; done
python3 "$(dirname "$0")/hold_streams.py" "$streams" "$port" "$bridge" "$mode" "$mode"
kill -TERM "$bridge"; wait "$bridge" || true
kill "$stub"; wait "$stub" 2>/dev/null || true
rm -rf "$tmp"
for snapshot in idle open closed; do
  echo "$snapshot: $(grep -m1 '^mem_heap_B=' "/tmp/ms.$mode.$snapshot")"
done
