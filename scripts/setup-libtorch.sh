#!/usr/bin/env bash
# Assemble a CPU libtorch 2.13.0 (the version tch 0.26 needs) from PyPI wheels.
#
# The vendor's libtorch downloads are unreachable on our machines, so we take the
# three wheels that together hold a complete CPU libtorch, pinned by hash:
#   torch 2.13.0                   headers + libtorch_cpu.so, libtorch.so, libc10.so, libgomp
#   nvidia-cuda-runtime 13.0.96    libcudart.so.13  (NEEDED by libtorch_cpu.so, never called on CPU)
#   nvidia-cuda-cupti 13.0.85      libcupti.so.13   (likewise)
# libtorch_cuda.so is left out on purpose: torch-sys links it only if it exists.
#
# Idempotent: a complete install (stamp file matching this script's pins) is left alone.
# Usage: scripts/setup-libtorch.sh [PREFIX]   (default: <repo>/.libtorch)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-${LIBTORCH_PREFIX:-$repo/.libtorch}}
version=2.13.0
python=${PYTHON:-python3}

pins="torch==2.13.0 --hash=sha256:60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cupti==13.0.85 --hash=sha256:4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"
stamp_value=$(printf '%s\n' "$pins" | sha256sum | cut -d' ' -f1)
stamp=$prefix/.doodle-stamp

check() {
    local lib missing
    for lib in libtorch_cpu.so libtorch.so libc10.so libgomp.so.1 libcudart.so.13 libcupti.so.13; do
        [ -f "$prefix/lib/$lib" ] || { echo "missing $prefix/lib/$lib" >&2; return 1; }
    done
    [ -f "$prefix/include/torch/csrc/api/include/torch/torch.h" ] || { echo "missing torch headers" >&2; return 1; }
    missing=$(ldd "$prefix/lib/libtorch_cpu.so" "$prefix/lib/libc10.so" | grep 'not found' || true)
    if [ -n "$missing" ]; then
        echo "unresolved libraries in $prefix/lib:" >&2
        echo "$missing" >&2
        return 1
    fi
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ] && check 2>/dev/null; then
    echo "libtorch $version already installed at $prefix"
    exit 0
fi

echo "assembling libtorch $version (CPU) from PyPI wheels into $prefix"
work=$(mktemp -d "${TMPDIR:-/tmp}/libtorch.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$pins" >"$work/requirements.txt"

"$python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 \
    -r "$work/requirements.txt" -d "$work/wheels"

staging=$work/libtorch
mkdir -p "$staging/lib" "$staging/include" "$work/x"
"$python" - "$work/wheels" "$work/x" <<'PY'
import pathlib, sys, zipfile
wheels, out = map(pathlib.Path, sys.argv[1:])
wanted = ("torch/include/", "torch/lib/libtorch_cpu.so", "torch/lib/libtorch.so",
          "torch/lib/libc10.so", "torch/lib/libgomp.so.1",
          "nvidia/cu13/lib/libcudart.so.13", "nvidia/cu13/lib/libcupti.so.13")
for whl in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.startswith(wanted):
                z.extract(name, out)
PY
cp -a "$work/x/torch/include/." "$staging/include/"
cp -a "$work/x/torch/lib/." "$staging/lib/"
cp -a "$work/x/nvidia/cu13/lib/." "$staging/lib/"
chmod -R u+rwX,go+rX "$staging"
echo "$version" >"$staging/build-version"

# Swap the finished tree into place, so an interrupted run never leaves half an install.
mkdir -p "$(dirname "$prefix")"
rm -rf "$prefix.old"
[ -e "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$staging" "$prefix"
rm -rf "$prefix.old"

check
echo "$stamp_value" >"$stamp"
echo "libtorch $version installed at $prefix ($(du -sh "$prefix" | cut -f1))"
