#!/usr/bin/env bash
# The whole suite: lint + format check, import rules, type check, then every test (unit and real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== lint (biome)"
npx biome check .
echo "== import rules (dependency-cruiser: ARCHITECTURE.md)"
npx depcruise src cmd --config .dependency-cruiser.cjs
echo "== typecheck (tsc)"
npx tsc -p tsconfig.json --noEmit
echo "== real servers (scripts/test-deps.sh; instant when cached)"
bash scripts/test-deps.sh
echo "== tests (vitest)"
npx vitest run "$@"
