#!/usr/bin/env bash
# Installs the offline AMP for Email validator used by tests/test_amp_validation.py.
#
#   * the `amphtml-validator` CLI, pinned in package-lock.json (npm ci);
#   * validator_wasm.js, the validator engine itself, taken from the published
#     npm package next@15.5.29 (dist/compiled/amphtml-validator/), so that the
#     CLI never has to download the engine from the web at run time.
#
# Needs node + npm and the npm registry (nothing else). Idempotent: a second
# run with everything in place does no network access. Any mismatch with the
# pinned hashes below is fatal.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

NEXT_VERSION="15.5.29"
# sha256 of next-15.5.29.tgz as published on the npm registry
# (npm's own integrity for it: sha512-93AMszTCdi9Az7fD5VzcWy46SHCdQF45+i53K0LpDc4dDXCwB9P1SxP1wBYZKW6dF3HJnz41jyEni1vmgCluiw==)
NEXT_TARBALL_SHA256="c3ed93e652d9c76afb11b722356ac786cc1fffb3c417713070fde6d553b070a3"
NEXT_TARBALL_INTEGRITY="sha512-93AMszTCdi9Az7fD5VzcWy46SHCdQF45+i53K0LpDc4dDXCwB9P1SxP1wBYZKW6dF3HJnz41jyEni1vmgCluiw=="
VALIDATOR_MEMBER="package/dist/compiled/amphtml-validator/validator_wasm.js"
# sha256 of the extracted validator_wasm.js (also checked by tests/ampvalidator.py)
VALIDATOR_JS_SHA256="f1f4629ab36f555f5a9937a5cf00f0ef780bf025883c035d06389b151c896f26"
VALIDATOR_JS="$here/validator_wasm.js"
CLI="$here/node_modules/amphtml-validator/cli.js"
STAMP="$here/node_modules/.clickmap-installed-lock"

die() {
  echo "tests/amp/install.sh: error: $*" >&2
  exit 1
}
say() {
  echo "tests/amp/install.sh: $*"
}

command -v node >/dev/null 2>&1 || die "node is not installed (Node 18+ is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"

# hash_file ALGO ENCODING FILE  (node is used so that no coreutils flavour matters)
hash_file() {
  node -e '
    const [algo, enc, file] = process.argv.slice(1);
    const h = require("crypto").createHash(algo);
    h.update(require("fs").readFileSync(file));
    process.stdout.write(h.digest(enc));
  ' "$1" "$2" "$3"
}

# --- 1. the CLI -------------------------------------------------------------
if [[ -f "$CLI" && -f "$STAMP" ]] && cmp -s package-lock.json "$STAMP"; then
  :
else
  say "installing amphtml-validator (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null \
    || die "npm ci failed in $here"
  [[ -f "$CLI" ]] || die "npm ci did not install $CLI"
  cp package-lock.json "$STAMP"
fi

# --- 2. validator_wasm.js from next@15.5.29 -----------------------------------
if [[ -f "$VALIDATOR_JS" ]] && [[ "$(hash_file sha256 hex "$VALIDATOR_JS")" == "$VALIDATOR_JS_SHA256" ]]; then
  :
else
  rm -f "$VALIDATOR_JS"
  say "fetching validator_wasm.js from next@$NEXT_VERSION (npm pack, ~31 MB, cached by npm)"
  tmp="$(mktemp -d "$here/.install-tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  npm pack "next@$NEXT_VERSION" --pack-destination "$tmp" --loglevel=error >/dev/null \
    || die "npm pack next@$NEXT_VERSION failed"
  tarball="$tmp/next-$NEXT_VERSION.tgz"
  [[ -f "$tarball" ]] || die "npm pack did not produce $tarball"

  got="$(hash_file sha256 hex "$tarball")"
  [[ "$got" == "$NEXT_TARBALL_SHA256" ]] \
    || die "sha256 mismatch for next-$NEXT_VERSION.tgz: expected $NEXT_TARBALL_SHA256, got $got"
  got="sha512-$(hash_file sha512 base64 "$tarball")"
  [[ "$got" == "$NEXT_TARBALL_INTEGRITY" ]] \
    || die "integrity mismatch for next-$NEXT_VERSION.tgz: expected $NEXT_TARBALL_INTEGRITY, got $got"

  tar -xzf "$tarball" -O "$VALIDATOR_MEMBER" >"$tmp/validator_wasm.js" \
    || die "could not extract $VALIDATOR_MEMBER from next-$NEXT_VERSION.tgz"
  got="$(hash_file sha256 hex "$tmp/validator_wasm.js")"
  [[ "$got" == "$VALIDATOR_JS_SHA256" ]] \
    || die "sha256 mismatch for validator_wasm.js: expected $VALIDATOR_JS_SHA256, got $got"
  mv "$tmp/validator_wasm.js" "$VALIDATOR_JS"
  rm -rf "$tmp"
  trap - EXIT
fi

# --- 3. smoke test: a minimal valid AMP4EMAIL document must PASS, offline -----
# Where a network namespace can be made, run it with no network at all, which
# proves that --validator_js with a local file never reaches for the web.
runner=()
if command -v unshare >/dev/null 2>&1; then
  if unshare -n true >/dev/null 2>&1; then
    runner=(unshare -n)
  elif unshare -rn true >/dev/null 2>&1; then
    runner=(unshare -rn)
  fi
fi
minimal='<!doctype html>
<html ⚡4email data-css-strict>
<head>
<meta charset="utf-8">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp4email-boilerplate>body{visibility:hidden}</style>
</head>
<body><p>Hello, <a href="https://example.com/">world</a>.</p></body>
</html>'
out="$(printf '%s\n' "$minimal" | "${runner[@]}" node "$CLI" \
  --validator_js "$VALIDATOR_JS" --html_format AMP4EMAIL --format json -)" \
  || die "smoke test failed: the validator rejected a minimal valid AMP4EMAIL document: $out"
[[ "$out" == *'"status":"PASS"'* ]] || die "smoke test failed: unexpected validator output: $out"
say "ok: amphtml-validator $(node -p 'require("'"$here"'/node_modules/amphtml-validator/package.json").version') with validator_wasm.js from next@$NEXT_VERSION${runner:+ (checked offline)}"
