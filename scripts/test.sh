#!/usr/bin/env bash
# The project's test command: the README gives it and CI (.ci/run) runs exactly this.
# It installs what a fresh machine lacks, then runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suites need (none yet for the core suite; later suites add
# redis-server and chromium here). Installed only when missing.
need_debs=()
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  fi
fi

# Some suites run the binaries as separate processes, as in production; `cargo test` alone
# does not build them.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
