//! `stage2-merge`: stage 2 of the pipeline (see `doodle_pipeline::stages::merge`).

fn main() -> std::process::ExitCode {
    doodle_pipeline::stage::main(2, doodle_pipeline::stages::merge::run)
}
