//! `stage5-retrain`: stage 5 of the pipeline (see `doodle_retrain::retrain`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(5, doodle_retrain::retrain::run)
}
