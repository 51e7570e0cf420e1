#!/usr/bin/env bash
# The project's test command: the README gives it and CI (.ci/run) runs exactly this.
# It installs what a fresh machine lacks, then runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suites need, installed only when missing:
# redis-server (+ redis-cli from redis-tools) for the threads suite's real Redis and Cluster.
need_debs=()
command -v redis-server >/dev/null 2>&1 || need_debs+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_debs+=(redis-tools)
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  fi
fi

cargo test --workspace --locked "$@"
