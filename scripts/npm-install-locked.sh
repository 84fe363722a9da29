#!/bin/sh
# Installs exactly what package-lock.json pins, never changing it: `prod` = production dependencies only (the
# image's runtime stage), `all` = everything (the image's build stage). Used by the Dockerfile and by
# test/e2e/chart/runtime-image.test.ts, so the test runs the image's very steps.
#
# `npm ci` first. npm 11.19 refuses this lockfile (`Missing: @biomejs/cli-android-arm64@ from lock file`: its
# ci check wants every platform's optional package in the lock, which its own `npm install` leaves out; fixed
# upstream in npm/cli#9083), so then `npm install` from the same lockfile, failing if that would change it.
set -eu
case "${1:-}" in
  prod) omit="--omit=dev" ;;
  all) omit="" ;;
  *) echo "usage: $0 prod|all" >&2; exit 2 ;;
esac
flags="--ignore-scripts --no-audit --no-fund"
# shellcheck disable=SC2086
if npm ci $omit $flags; then exit 0; fi
echo "npm-install-locked: npm ci refused the lockfile; installing from it with npm install instead" >&2
before="$(mktemp)"
cp package-lock.json "$before"
# shellcheck disable=SC2086
npm install $omit $flags --no-save
if ! cmp -s package-lock.json "$before"; then
  echo "npm-install-locked: npm install would change package-lock.json; refusing (run npm install and commit the lock)" >&2
  exit 1
fi
rm -f "$before"
