//! `stage1-scan`: stage 1 of the pipeline (see `doodle_pipeline::stages::scan`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(1, doodle_pipeline::stages::scan::run)
}
