#!/usr/bin/env bash
# Regenerates crates/asn1/src/generated/*.rs from testdata/asn1/*.asn1 with
# rasn-compiler 0.16, applying the fixes in codegen/src/fixup.rs.
# Run from anywhere; needs cargo and rustfmt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
root="$(cd "$crate/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
cargo run --quiet --release --manifest-path "$here/Cargo.toml" -- \
    "$root/testdata/asn1" "$crate/src/generated" "$crate/tests/support/generated_gen.rs"
echo "generated:" "$crate"/src/generated/{pkix_explicit88,pkix_implicit88,pe,rsp,sgp32,sgp32_v1_0}.rs
