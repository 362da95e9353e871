#!/usr/bin/env bash
# Pipeline benchmark (issue 16 targets): stages 1-3 on N PNGs across 15 categories, wall time
# and peak RSS of each, at two sizes (RSS must not grow with the number of images), and the
# orchestrator's own overhead per stage (spawn -> first output line).
# Usage: scripts/bench-pipeline.sh [N ...]     (default: 10000 100000)
# Each size: N PNGs -> scan -> convert -> merge (moves into old/), then N more -> convert ->
# merge (stacks old + new). Release builds; a fresh temp folder per size.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
data=${QUICKDRAW_DIR:-$(pwd)/../shared/data/quickdraw}/train

cargo build --release --locked -p doodle-pipeline --bins
bin=$(pwd)/target/release
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%dT%H:%MZ)"

timed() { # label, command...: one line "label  wall s  peak RSS"
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
    read -r wall rss <"$work/time"
    printf '%-34s %8.2f s   peak RSS %7.1f MB   %s\n' "$label" "$wall" "$(echo "$rss/1024" | bc -l)" \
        "$(grep -o '"summary":"[^"]*"' "$work/out" | cut -d'"' -f4)"
}

for n in "${sizes[@]}"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/bench-pipeline.XXXXXX")
    cat >"$work/config.toml" <<TOML
[telemetry]
log_dir = "$work/logs"
level = "warn"
[backend]
img_data_location = "$work/img"
[database]
url = "sqlite://$work/runs.db?mode=rwc"
[pipeline]
data_repo = "$work/repo"
state_dir = "$work/state"
quarantine_dir = "$work/quarantine"
TOML
    export DOODLE_CONFIG=$work/config.toml
    echo "== $n PNGs in 15 categories"
    "$bin/pipeline-bench" generate --data "$data" --images "$n" --out "$work/img" >/dev/null
    timed "stage 1 scan ($n)" "$bin/stage1-scan"
    timed "stage 3 convert ($n)" "$bin/stage3-convert"
    timed "stage 2 merge, move ($n rows)" "$bin/stage2-merge"
    "$bin/pipeline-bench" generate --data "$data" --images "$n" --out "$work/img" >/dev/null
    timed "stage 3 convert, 2nd batch ($n)" "$bin/stage3-convert"
    timed "stage 2 merge, stack ($n + $n rows)" "$bin/stage2-merge"
    du -sh "$work/repo/drawings/old" | awk '{print "   old/ on disk: " $1}'
    # A whole run through the orchestrator on N more PNGs (stages 5-6 are not built yet: a
    # stand-in that only prints the protocol's lines), for its own cost per stage.
    "$bin/pipeline-bench" generate --data "$data" --images "$n" --out "$work/img" >/dev/null
    stand_in="[\"sh\", \"-c\", \"echo 'result: {}'; echo success\"]"
    cat >>"$work/config.toml" <<TOML
file_threshold = 1
dvc_command = "$(pwd)/.venv/bin/dvc"
stage_commands = [["$bin/stage1-scan"], ["$bin/stage2-merge"], ["$bin/stage3-convert"],
    ["$bin/stage4-version"], $stand_in, $stand_in, ["$bin/stage7-clean"]]
TOML
    sed -i 's/^level = "warn"/level = "info"/' "$work/config.toml"
    timed "orchestrator --once ($n)" "$bin/pipeline-orchestrator" --once
    # One line per stage end: its name, duration, and spawn -> first output line.
    grep -E 'stage [0-9] (complete|failed)' "$work/logs/pipeline_orchestrator.log" \
        | sed -E 's/.*(stage [0-9] [a-z]+).* duration_ms=([0-9.]+).* first_line_ms=([0-9.]+).*/   \1: \2 ms, first line after \3 ms/' 
    rm -rf "$work"
done
