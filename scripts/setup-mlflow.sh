#!/usr/bin/env bash
# MLflow (tracking server + model registry) and DVC in the project venv (.venv), pinned.
# The registry tests start `mlflow server` on loopback from here; the pipeline calls `dvc`.
# Idempotent: skipped when the venv already has the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=.venv
pins=(mlflow==3.17.2 dvc==3.67.1)
stamp=$venv/.doodle-pins
want=$(printf '%s\n' "${pins[@]}")

if [ -x "$venv/bin/mlflow" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "mlflow already installed in $venv"
    exit 0
fi
echo "installing ${pins[*]} into $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
"$venv/bin/mlflow" --version
printf '%s\n' "$want" >"$stamp"
