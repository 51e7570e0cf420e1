#!/usr/bin/env bash
# Instructions the bridge executes for one chat stream, counted by valgrind's callgrind
# (repeatable on a shared, noisy machine, unlike CPU time). The agent stub runs natively; the
# bridge runs under callgrind; one `POST /chat` reads `stub: burst=N size=256` as SSE.
#
#   CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     cargo build --release -p bridge -p agent-stub --bins
#   bash benches/callgrind.sh target/release /tmp/cg.1 1
#   bash benches/callgrind.sh target/release /tmp/cg.20k 20001
#
# Instructions per event: (total of the second - total of the first) / 20000.
# `callgrind_annotate --inclusive=yes /tmp/cg.20k` shows where they go.
set -euo pipefail
bin=$1 out=$2 events=$3 port=${4:-18080}
tmp=$(mktemp -d)
"$bin/agent-stub" --listen 127.0.0.1:0 >"$tmp/stub" 2>/dev/null &
stub=$!
for _ in $(seq 50); do grep -q 'listening on' "$tmp/stub" && break; sleep 0.2; done
agent=$(grep -o 'http://[0-9.:]*' "$tmp/stub" | head -1)
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "$bin/bridge" \
  --listen "127.0.0.1:$port" --allow-anonymous --rate-limit-chat off --rate-limit-read off \
  --max-streams-per-identity 1000000 --max-streams 1000000 --max-connections 1000000 \
  --agent "bench=$agent" >"$tmp/bridge" 2>&1 &
bridge=$!
for _ in $(seq 300); do grep -q 'listening on' "$tmp/bridge" && break; sleep 0.2; done
received=$(curl -sN -X POST "127.0.0.1:$port/v1/agents/bench/chat" \
  -H 'content-type: application/json' -H 'accept: text/event-stream' \
  -d "{\"message\":\"stub: burst=$events size=256\"}" | grep -c '^event: text_delta' || true)
kill -TERM "$bridge"; wait "$bridge" || true
kill "$stub"; wait "$stub" 2>/dev/null || true
rm -rf "$tmp"
echo "text_delta events received: $received"
grep -h '^totals:' "$out"
