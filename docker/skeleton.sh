#!/usr/bin/env bash
# The workspace with every crate's code replaced by empty stubs: the manifests, Cargo.lock,
# .cargo/config.toml and build scripts as they are, and an empty `lib.rs` / `fn main() {}`
# for every target root. The Dockerfile builds this first, so compiling the dependencies is
# one layer that is reused until a manifest or Cargo.lock changes (what cargo-chef does).
# Usage: docker/skeleton.sh SOURCE OUT
set -euo pipefail
src=$1
out=$2
mkdir -p "$out"
cd "$src"
cp --parents Cargo.toml Cargo.lock .cargo/config.toml "$out/"
cp -r migrations "$out/"
for manifest in crates/*/Cargo.toml; do
    crate=$(dirname "$manifest")
    cp --parents "$manifest" "$out/"
    [ -f "$crate/build.rs" ] && cp --parents "$crate/build.rs" "$out/"
    # Target roots: the conventional ones that exist, and every `path = "..."` of a target
    # table ([lib], [[bin]], [[test]], [[bench]], [[example]]).
    roots=$(
        cd "$crate"
        ls src/lib.rs src/main.rs src/bin/*.rs 2>/dev/null || true
        sed -n 's/^path *= *"\([^"]*\.rs\)".*/\1/p' Cargo.toml
    )
    for root in $roots; do
        mkdir -p "$out/$crate/$(dirname "$root")"
        if [ "$root" = src/lib.rs ]; then
            : >"$out/$crate/$root"
        else
            echo 'fn main() {}' >"$out/$crate/$root"
        fi
    done
done
