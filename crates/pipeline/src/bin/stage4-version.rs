//! `stage4-version`: stage 4 of the pipeline (see `doodle_pipeline::stages::version`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(4, doodle_pipeline::stages::version::run)
}
