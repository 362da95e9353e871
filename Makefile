# doodle — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test setup model build release fmt lint bench clean

help:
	@echo "make run    build and start the whole system on embedded defaults (Ctrl-C stops it)"
	@echo "make test   install what the tests need, then fmt, clippy and every test"
	@echo "make model  train the default model and deploy it in the local registry"
	@echo "make bench  run the benchmarks recorded in docs/benchmarks.md"

setup:
	scripts/setup-libtorch.sh

run: setup
	scripts/run.sh

test:
	scripts/test.sh

model: setup
	@checkpoint=$$(scripts/make-model.sh | tail -n 1) && \
	cargo run --release --locked -q -p doodle-registry --bin doodle-registry -- \
		register "$$checkpoint" --deploy --tag source=make-model

build: setup
	cargo build --workspace --all-targets

release: setup
	cargo build --release --workspace --bins

fmt:
	cargo fmt --all

lint: setup
	cargo clippy --workspace --all-targets -- -D warnings

bench: setup
	scripts/bench.sh

clean:
	cargo clean
