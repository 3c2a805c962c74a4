#!/usr/bin/env bash
# Everything CI checks, in order: tools, formatting, clippy, build + Rust tests, browser end-to-end tests.
# Runs from any working directory. One build in the `ci` profile (Cargo.toml: dependencies optimized as in
# release, Chorus's crates at opt-level 1, for compile time) is shared by the Rust tests and the browser tests.
#
# Usage: scripts/test.sh [all|rust|browser]
#   all      (default, what CI runs) every step
#   rust     fmt, clippy, build, cargo test
#   browser  tools, a release build of the server (web/ is compiled into it), the browser tests
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WHAT="${1:-all}"
case "$WHAT" in
  all | rust | browser) ;;
  *)
    echo "usage: scripts/test.sh [all|rust|browser]" >&2
    exit 2
    ;;
esac

step() {
  printf '\n==== %s ====\n' "$*"
}

is_root() {
  [ "$(id -u)" = 0 ]
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

check_tools() {
  step "1/5 tools: chromium, node, npm"
  if [ ! -x /usr/bin/chromium ]; then
    if is_root; then
      echo "installing chromium (Debian package)"
      apt_install chromium
    else
      echo "error: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
      exit 1
    fi
  fi
  /usr/bin/chromium --version 2>/dev/null || true
  # nft for the ICE-TCP browser test (a firewall rule in a network namespace; root only, else it SKIPs loudly).
  if ! command -v nft >/dev/null && is_root; then
    echo "installing nftables (Debian package)"
    apt_install nftables
  fi

  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if is_root; then
      echo "installing nodejs and npm (Debian packages)"
      apt_install nodejs npm
    else
      echo "error: node and npm are required (Node.js 20 or newer): e.g. sudo apt-get install -y nodejs npm" >&2
      exit 1
    fi
  fi
  local node_major
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$node_major" -lt 20 ]; then
    echo "error: Node.js $(node --version) is too old; the browser tests (playwright-core) need Node.js 20+" >&2
    exit 1
  fi
  echo "node $(node --version), npm $(npm --version 2>/dev/null)"
}

# redis-server for the cluster tests (signaling/tests/server/cluster.rs and the Redis store tests start their own
# on a free loopback port).
need_redis() {
  if command -v redis-server >/dev/null; then
    return
  fi
  if is_root; then
    echo "installing redis-server (Debian package) for the cluster tests"
    apt_install redis-server
  else
    echo "error: redis-server is missing (the cluster tests need it): sudo apt-get install -y redis-server" >&2
    exit 1
  fi
}

rust_checks() {
  need_redis
  redis-server --version
  step "2/5 cargo fmt --check"
  cargo fmt --all -- --check

  step "3/5 cargo clippy (profile ci, -D warnings)"
  # The ci profile here too, so the C code of dependencies (aws-lc, ring, SQLite), build scripts and proc
  # macros are built once, for clippy and the build alike.
  cargo clippy --workspace --all-targets --profile ci -- -D warnings

  step "4/5 cargo build + cargo test (profile ci)"
  # The benches (benches/) are type-checked by clippy --all-targets above and run only by `cargo bench`.
  # They are excluded here because their dev-dependencies (criterion) change the features of shared
  # dependencies, which would make cargo test rebuild the whole dependency tree a second time.
  cargo build --profile ci --workspace --exclude chorus-benches
  # Includes loadtest/tests/smoke.rs: a 3-second load-test smoke run against an in-process server, checking
  # only that media flowed and the JSON report is well-formed.
  cargo test --profile ci --workspace --exclude chorus-benches
}

# `npm ci` in tests/<name> unless its node_modules already matches package-lock.json.
npm_ci() {
  local dir="$ROOT/tests/$1"
  local stamp="$dir/node_modules/.chorus-lock.sha256"
  local lock_hash
  lock_hash="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
    echo "npm ci (tests/$1)"
    # playwright-core never downloads a browser; the tests use /usr/bin/chromium.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    echo "$lock_hash" >"$stamp"
  else
    echo "tests/$1/node_modules is up to date"
  fi
}

browser_tests() {
  step "5/5 browser end-to-end tests (headless Chromium), then the deploy/ files check"
  need_redis # tests/browser/cluster.test.mjs runs two nodes on a redis-server
  npm_ci browser
  CHORUS_BIN="$ROOT/target/ci/chorus" node --test --test-concurrency=1 "$ROOT/tests/browser"/*.test.mjs
  # Docker cannot run in CI: deploy/ (Dockerfile, compose, Kubernetes) is parsed and checked against the
  # server's flags instead (tests/deploy/*.test.mjs).
  npm_ci deploy
  CHORUS_BIN="$ROOT/target/ci/chorus" node --test "$ROOT/tests/deploy/"*.test.mjs
}

case "$WHAT" in
  all)
    check_tools
    rust_checks
    browser_tests
    ;;
  rust)
    rust_checks
    ;;
  browser)
    check_tools
    step "4/5 cargo build --profile ci -p chorus-signaling (the server, with web/ compiled in)"
    cargo build --profile ci -p chorus-signaling
    browser_tests
    ;;
esac
