#!/usr/bin/env bash
# The project's test command: the README gives it and CI (.ci/run) runs exactly this.
# It installs what a fresh machine lacks, then runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suites need, installed only when missing:
# - redis-server (+ redis-cli from redis-tools): the threads suite's real Redis and Cluster;
# - Python 3 with venv: the chart tests;
# - chromium + chromium-driver (chromedriver): the browser suite's real browser;
# - podman + runc: the chart tests run the binaries as containers under the chart's
#   securityContext (tests/helm/test_container.py).
need_debs=()
command -v redis-server >/dev/null 2>&1 || need_debs+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_debs+=(redis-tools)
command -v python3 >/dev/null 2>&1 || need_debs+=(python3)
command -v chromium >/dev/null 2>&1 || need_debs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_debs+=(chromium-driver)
command -v podman >/dev/null 2>&1 || need_debs+=(podman)
command -v runc >/dev/null 2>&1 || need_debs+=(runc)
# - Node.js + npm: the JavaScript client's tests (clients/js), the chat page's vendored modules,
#   the dialects suite's official protocol clients (tests/dialects/js);
# - curl + openssl: the README's walk-throughs (tests/readme/) run as written.
command -v curl >/dev/null 2>&1 || need_debs+=(curl)
command -v openssl >/dev/null 2>&1 || need_debs+=(openssl)
command -v node >/dev/null 2>&1 || need_debs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_debs+=(npm)
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_debs+=(python3-venv)
fi
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
  fi
fi

# The bridge's modules import in one direction only (README: Architecture).
python3 scripts/module-deps.py >/dev/null

# The agents suite (tests/agents/) starts Python agents from the project-local virtualenv:
# the example agent (grpcio, grpcio-tools) and the official A2A SDK's gRPC server.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/agents/requirements.txt

# The dialects suite's official protocol clients (tests/dialects/js), before `cargo test` runs
# them: from the committed lock file, installed again only when it changed.
dialects=tests/dialects/js
if [ ! -f "$dialects/node_modules/.package-lock.json" ] || [ "$dialects/package-lock.json" -nt "$dialects/node_modules/.package-lock.json" ]; then
  (cd "$dialects" && npm ci --no-audit --no-fund)
fi

# Some suites run the binaries as separate processes, as in production; `cargo test` alone
# does not build them.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"

# The JavaScript client (clients/js) against the binaries built above, and the chat page's
# vendored modules (bridge/ui/vendor/) checked against bridge/ui/package-lock.json. Packages
# come from the committed lock files, installed again only when a lock file changed.
for pkg in clients/js bridge/ui; do
  if [ ! -f "$pkg/node_modules/.package-lock.json" ] || [ "$pkg/package-lock.json" -nt "$pkg/node_modules/.package-lock.json" ]; then
    (cd "$pkg" && npm ci --no-audit --no-fund)
  fi
done
node bridge/ui/vendor.mjs --check
(cd clients/js && npm test)

# Chart tests (tests/helm/): real Helm through helm-python-sdk, kubernetes-validate, and the
# real binaries, in a project-local virtualenv.
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  rm -rf .venv
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/helm/requirements.txt
(cd tests/helm && ../../.venv/bin/python -m pytest -q -p no:cacheprovider)
