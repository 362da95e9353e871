//! The retraining pipeline's stages 5 and 6, and the promotion gate between them.
//!
//! - [`retrain`] (`stage5-retrain`): fine-tune the **deployed** model (the registry's alias) on
//!   the base data plus the users' drawings (`old/` + `new/`), never on the evaluation set, into
//!   a candidate checkpoint under `<state_dir>/candidates/`.
//! - [`register`] (`stage6-register`): evaluate the candidate and the deployed model on the same
//!   fixed evaluation set, apply the [`gate`], register the candidate, and move the alias only
//!   when the gate promotes it.
//! - [`evalset`]: the fixed evaluation set both stages use (the rule is in its docs).
//! - [`categories`]: the candidate's label order.
//! - [`candidate`]: where candidates live and what their metadata records.
//! - [`data_version`]: the data repository's git commit and DVC hash (stage 4's output).
//! - [`tracking`]: parameters and per-epoch metrics to an MLflow run (`registry.kind = "mlflow"`).
//!
//! This crate links libtorch (through `doodle-model`), which is why it is not part of
//! `doodle-pipeline`; both stage binaries run under `doodle_pipeline::stage::main`.

pub mod candidate;
pub mod categories;
pub mod data_version;
pub mod evalset;
pub mod gate;
pub mod register;
pub mod retrain;
pub mod tracking;

/// A current-thread tokio runtime for the registry's async calls (training itself is sync).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// libtorch's thread count from `model.threads` (0 = one per core).
pub(crate) fn set_threads(settings: &doodle_core::Settings) {
    let threads = doodle_core::config::resolve_threads(settings.model.threads);
    tch::set_num_threads(threads as i32);
}

/// Who moves the alias: the orchestrator's run, or a person running the stage by hand.
pub(crate) fn run_label() -> String {
    match pipeline_run() {
        Some(run) => format!("pipeline run {run}"),
        None => "stage6-register (by hand)".into(),
    }
}

/// The orchestrator's run id (`DOODLE_RUN_ID`), when an orchestrator started this stage.
pub fn pipeline_run() -> Option<i64> {
    std::env::var(doodle_pipeline::protocol::RUN_ID_ENV)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The registry `[registry]` configures.
pub(crate) fn registry(
    settings: &doodle_core::Settings,
) -> anyhow::Result<doodle_registry::Registry> {
    use anyhow::Context;
    doodle_registry::Registry::from_settings(settings).context("opening the model registry")
}

/// The version the registry's alias names, and its model.
pub(crate) fn load_deployed(
    rt: &tokio::runtime::Runtime,
    settings: &doodle_core::Settings,
) -> anyhow::Result<(doodle_registry::Deployed, doodle_model::Classifier)> {
    deployed_of(rt, &registry(settings)?, &settings.registry.alias)
}

/// The version `alias` names in `registry`, and its model.
pub(crate) fn deployed_of(
    rt: &tokio::runtime::Runtime,
    registry: &doodle_registry::Registry,
    alias: &str,
) -> anyhow::Result<(doodle_registry::Deployed, doodle_model::Classifier)> {
    use anyhow::Context;
    let deployed = rt
        .block_on(registry.deployed(alias))
        .with_context(|| format!("asking the registry which version `{alias}` names"))?
        .with_context(|| {
            format!(
                "nothing is deployed: alias `{alias}` of model `{}` names no version (register a \
                 model and point the alias at it: doodle-registry)",
                registry.name()
            )
        })?;
    let model = doodle_model::Classifier::load(&deployed.dir)
        .with_context(|| format!("loading deployed version {}", deployed.version))?;
    tracing::info!(version = deployed.version, dir = %deployed.dir.display(), "deployed model loaded");
    Ok((deployed, model))
}
