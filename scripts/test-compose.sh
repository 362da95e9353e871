#!/usr/bin/env bash
# The compose stack for real (issue 19): docker-compose.yml brought up on a real Docker engine,
# our images built from docker/Dockerfile, a person's requests through the published ports.
#
#  1. The engine: Debian's dockerd, started here when none answers (no systemd), stopped at
#     the end if it was started here. Compose v2 from scripts/compose/setup-compose-cli.sh.
#  2. Base images: no registry is reachable, so a Debian bookworm base is made with debootstrap
#     and `docker import` (with this machine's extra CA certificates, which its egress proxy
#     needs), and a Rust builder from it plus this machine's toolchain (`rustc --print
#     sysroot`). Both are cached by tag and passed as DEBIAN_IMAGE / RUST_IMAGE; the
#     third-party images are swapped for local Debian-package equivalents by
#     docker/compose.local.yml (which says which).
#  3. `docker compose build` (the classic builder; BuildKit needs buildx, not packaged here):
#     every image, the Rust dependencies in their own cached layer.
#  4. `up --wait` of every service but Grafana (no package here): every healthcheck passes,
#     the first-model service imports the shared test model (docker/compose.test.yml), and
#     the orchestrator's schedule starts.
#  5. Through the published ports: the page, then drawings classified and saved
#     (scripts/compose/client.py); the saved PNGs are on the drawings volume.
#  6. The orchestrator container once (`docker compose run orchestrator --once`): all seven
#     stages complete in PostgreSQL (read through the dashboard), a new version in MLflow, the
#     model server serving what the alias names.
#  7. Prometheus, in its container, scrapes every target as up (the host's Windows exporter
#     is the one target that is down where there is none).
#  8. `down -v`: no container, network or volume of the project is left; dockerd stopped.
# COMPOSE_KEEP=1 leaves the stack up (and dockerd running) for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
work=$target_dir/compose
data=${E2E_DATA_DIR:-$repo/../shared/data/quickdraw/train}
mkdir -p "$work"

say() { printf 'test-compose: %s\n' "$*"; }
started=$(date +%s)
lap=$started
step() {
    local now
    now=$(date +%s)
    say "$1 ($((now - lap)) s; $((now - started)) s in all)"
    lap=$now
}

missing=()
for tool in dockerd docker debootstrap python3; do
    command -v $tool >/dev/null || missing+=("$tool")
done
"$repo/.venv/bin/python" -c 'import numpy' 2>/dev/null || missing+=("numpy in .venv (scripts/setup-mlflow.sh)")
[ -f "$data/house.npy" ] || missing+=("$data/house.npy")
if [ ${#missing[@]} -gt 0 ]; then
    say "missing: ${missing[*]}; run scripts/setup-test-tools.sh" >&2
    exit 1
fi
scripts/compose/setup-compose-cli.sh >/dev/null
export DOCKER_CONFIG=$work/docker-config

# --- 1. the engine ----------------------------------------------------------------------------
dockerd_pid=
if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { say "starting dockerd needs root" >&2; exit 1; }
    dockerd >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 $dockerd_pid 2>/dev/null || { cat "$work/dockerd.log" >&2; exit 1; }
        sleep 0.5
    done
    docker info >/dev/null
fi
say "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version)"

# One build at a time: the images share their build stages, and two builders compiling the
# same workspace at once on 2 cores would each take twice as long.
export COMPOSE_PROJECT_NAME=doodle-test COMPOSE_BAKE=false DOCKER_BUILDKIT=0 COMPOSE_PARALLEL_LIMIT=1
export POSTGRES_PASSWORD GF_SECURITY_ADMIN_PASSWORD
POSTGRES_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
GF_SECURITY_ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
compose=(docker compose -f docker-compose.yml -f docker/compose.local.yml -f docker/compose.test.yml)

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [ "${COMPOSE_KEEP:-0}" = 1 ]; then
        say "COMPOSE_KEEP=1: the stack stays up (${compose[*]} down -v to stop it)"
        exit $status
    fi
    if [ $status -ne 0 ]; then
        say "failed; the services' last log lines:" >&2
        "${compose[@]}" ps -a >&2 || true
        "${compose[@]}" logs --no-color --tail 40 >&2 || true
    fi
    "${compose[@]}" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    exit $status
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 2. base images ---------------------------------------------------------------------------
export DEBIAN_IMAGE=doodle-local/debian:bookworm-slim
if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
    rootfs=$work/rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # As in the upstream debian image: apt keeps no package caches in the image layers.
    printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };' \
        >"$rootfs/etc/apt/apt.conf.d/docker-clean"
    tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
fi
rust_version=$(rustc --version | cut -d' ' -f2)
export RUST_IMAGE=doodle-local/rust:$rust_version-slim-bookworm
if ! docker image inspect "$RUST_IMAGE" >/dev/null 2>&1; then
    cid=$(docker create "$DEBIAN_IMAGE")
    tar -C "$(rustc --print sysroot)" --exclude=./share/doc --transform 's,^\.,rust,' -c . \
        | docker cp - "$cid:/usr/local/"
    docker commit -c 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV CARGO_HOME=/usr/local/cargo' "$cid" "$RUST_IMAGE" >/dev/null
    docker rm "$cid" >/dev/null
fi
step "base images $DEBIAN_IMAGE, $RUST_IMAGE"

# --- 3. build ---------------------------------------------------------------------------------
export E2E_MODEL QUICKDRAW_DATA
cargo build --locked -q --bin doodle-model
E2E_MODEL=$(scripts/e2e-model.sh | tail -n 1)
QUICKDRAW_DATA=$(cd "$data/.." && pwd)
"${compose[@]}" build >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log" >&2; exit 1; }
step "images built (log: $work/build.log)"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^doodle(-local)?/' | sort

# --- 4. up ------------------------------------------------------------------------------------
# Every service the compose files define, but Grafana (no package here).
mapfile -t services < <("${compose[@]}" config --services | grep -vx grafana)
"${compose[@]}" up -d --wait --wait-timeout 600 "${services[@]}"
"${compose[@]}" ps --format 'table {{.Service}}\t{{.Status}}\t{{.Ports}}'
step "every service up and healthy"

# --- 5. draw, classify, save ------------------------------------------------------------------
client=("$repo/.venv/bin/python" scripts/compose/client.py)
per_category=10
expected=$(($(find "$data" -maxdepth 1 -name '*.npy' | wc -l) * per_category))
version=$("${client[@]}" draw "$data" $per_category)
saved=$("${compose[@]}" exec -T backend find /var/lib/doodle/drawings -name '*.png' | wc -l)
[ "$saved" -eq "$expected" ] || { say "the drawings volume holds $saved PNGs, not $expected" >&2; exit 1; }
step "$expected drawings classified and saved; on the volume: $saved PNGs"

# --- 6. the orchestrator container, once ------------------------------------------------------
"${compose[@]}" run --rm --no-deps orchestrator pipeline-orchestrator --once >"$work/orchestrator.log" 2>&1 \
    || { tail -n 40 "$work/orchestrator.log" >&2; exit 1; }
"${client[@]}" after-run "$version"
step "the pipeline ran in its container"

# --- 7. Prometheus ----------------------------------------------------------------------------
"${client[@]}" targets
step "Prometheus scrapes every target"

# --- 8. down ----------------------------------------------------------------------------------
if [ "${COMPOSE_KEEP:-0}" != 1 ]; then
    "${compose[@]}" down -v --remove-orphans --timeout 20
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
    left+=$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
    left+=$(docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
    [ -z "$left" ] || { say "left behind after down: $left" >&2; exit 1; }
    step "torn down: no container, volume or network left"
fi
say "ok"
