#!/bin/sh
# The first-model init service (docker-compose.yml `first-model`): a fresh stack has no
# deployed model, and the model server cannot answer without one. Runs once before the model
# server starts, and changes nothing when a version is already deployed.
#   FIRST_MODEL_CHECKPOINT=<folder>  register and deploy that checkpoint (an import), else
#   train a first model: `doodle-model base` with an epoch budget of FIRST_MODEL_MINUTES
#   (default 6, as `make run`) on model.data_dir (downloaded from Quick, Draw! when absent).
set -eu

set +e
version=$(doodle-registry deployed 2>/tmp/deployed.err)
status=$?
set -e
case $status in
    0) echo "first-model: version $version is deployed; nothing to do"; exit 0 ;;
    1) ;;  # none deployed yet
    *) echo "first-model: cannot read the registry: $(cat /tmp/deployed.err)" >&2; exit 2 ;;
esac

if [ -n "${FIRST_MODEL_CHECKPOINT:-}" ]; then
    echo "first-model: importing the checkpoint $FIRST_MODEL_CHECKPOINT"
    checkpoint=$FIRST_MODEL_CHECKPOINT
    source=import
else
    minutes=${FIRST_MODEL_MINUTES:-6}
    echo "first-model: no model is deployed; training a first one (about $minutes minutes)"
    # Downloaded (when absent) into model.data_dir itself: stage 5 retrains on the same data.
    checkpoint=$(doodle-model base --max-minutes "$minutes" \
        --out-root /var/lib/doodle/pipeline/models \
        --download-dir "${DOODLE_MODEL__DATA_DIR:-/var/lib/doodle/quickdraw/train}" \
        | tail -n 1)
    source=first-model
fi
doodle-registry register "$checkpoint" --deploy --tag "source=$source"
echo "first-model: deployed version $(doodle-registry deployed)"
