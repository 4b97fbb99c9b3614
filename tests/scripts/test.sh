#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, then checks formatting-free
# lint, docs and every test (unit, client, simulator, integration on a real kube-apiserver).
set -euo pipefail
cd "$(dirname "$0")/../.."
# One seed per run fixes every random choice of the tests (proptest, the reliability suite, the
# simulators' jitter and faults; tests/common/seed.rs): set PLO_TEST_SEED to replay a run.
PLO_TEST_SEED=${PLO_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
export PLO_TEST_SEED
replay() {
  echo "test seed: PLO_TEST_SEED=$PLO_TEST_SEED; to replay: PLO_TEST_SEED=$PLO_TEST_SEED bash tests/scripts/test.sh"
  echo "  (one test binary: PLO_TEST_SEED=$PLO_TEST_SEED cargo test --test NAME)"
}
replay
trap replay EXIT
bash tests/scripts/setup.sh
export CARGO_TERM_COLOR=never
# `proxmox-lxc-operator --version` names the commit it was built from (only main.rs reads it)
PLO_GIT_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
export PLO_GIT_COMMIT
cargo build --all-targets --locked
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
cargo test --locked --no-fail-fast -- --test-threads "${TEST_THREADS:-4}"
