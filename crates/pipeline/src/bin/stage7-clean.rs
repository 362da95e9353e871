//! `stage7-clean`: stage 7 of the pipeline (see `doodle_pipeline::stages::clean`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(7, doodle_pipeline::stages::clean::run)
}
