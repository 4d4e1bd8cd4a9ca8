#!/usr/bin/env bash
# Runs every test mediakit has, on a fresh Debian machine: formatting and lints, the no_std
# check, unit and property tests, the fuzz corpora replayed on stable, and the conformance
# suite that drives the real server binaries with ffmpeg/ffprobe.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    echo "== installing ffmpeg"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== no_std build of mediakit-core"
cargo build --manifest-path nostd-check/Cargo.toml --quiet

echo "== release build of the server binaries"
cargo build --release --locked -p mediakit-tokio -p mediakit-async-std

echo "== workspace tests (unit, property, conformance)"
cargo test --workspace --locked

echo "== fuzz corpora replayed on stable"
cargo test --manifest-path fuzz/Cargo.toml --test replay_corpora
