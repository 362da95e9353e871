#!/usr/bin/env bash
# `make model`: train the default model (config [model]: ResNet50 on the Quick, Draw! subset in
# model.data_dir, label order from model.categories_file) into models/base/<timestamp>/ and
# print that directory on the last line of stdout.
#
# Data: model.data_dir (default ../shared/data/quickdraw/train) when it holds every category;
# otherwise the first 2000 drawings of each are downloaded from the public Quick, Draw!
# numpy_bitmap files with HTTP range requests into data/quickdraw/train; when neither works the
# command says what to do.
#
# Extra arguments go to `doodle-model base`, e.g.
#   scripts/make-model.sh --max-minutes 6     # a first model for `make run` (fewer epochs)
#   scripts/make-model.sh --epochs 4 --seed 7
# Full run: about 65 minutes on an idle 2-core VM (16 epochs of ~240 s; see
# docs/benchmarks.md "Model").
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p doodle-model --bin doodle-model
exec target/release/doodle-model base "$@"
