#!/usr/bin/env bash
# Fails when the proto files do not lint, or when the committed generated code differs from what
# `buf generate` produces now.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
pnpm exec buf lint
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r packages/proto/src/gen "$tmp/before"
pnpm exec buf generate
if ! diff -r "$tmp/before" packages/proto/src/gen >/dev/null; then
  diff -r "$tmp/before" packages/proto/src/gen | head -20
  echo "generated code in packages/proto/src/gen is out of date: run 'pnpm exec buf generate' and commit the result" >&2
  exit 1
fi
echo "proto: lint clean, generated code up to date"
