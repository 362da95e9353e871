//! `stage6-register`: stage 6 of the pipeline (see `doodle_retrain::register`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = doodle_retrain::register::Args::parse();
    doodle_pipeline::stage::main(6, |settings| doodle_retrain::register::run(settings, &args))
}
