//! `stage3-convert`: stage 3 of the pipeline (see `doodle_pipeline::stages::convert`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(3, doodle_pipeline::stages::convert::run)
}
