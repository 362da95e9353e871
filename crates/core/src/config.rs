//! One configuration for the whole system.
//!
//! Layers, later ones win:
//! 1. defaults in code ([`Settings::default`]),
//! 2. `config.toml` (the file named by `DOODLE_CONFIG`, else `./config.toml` if it exists),
//! 3. environment variables `DOODLE_<TABLE>__<KEY>` (e.g. `DOODLE_BACKEND__PORT=8010`),
//! 4. the original design's variables, which keep working: `IMG_DATA_LOCATION` and
//!    `MLFLOW_HOSTED_MODEL_URL`.
//!
//! Unknown keys and bad values stop start-up with a message that names the key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "DOODLE_CONFIG";
/// Prefix of the environment overrides (`DOODLE_BACKEND__PORT`).
pub const ENV_PREFIX: &str = "DOODLE_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment's Display already names the key path and the source (file or env var)
        // of the offending value; list every error it found, not just the first.
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        ConfigError::Parse(messages.join("; "))
    }
}

/// Every service's settings: one table per service plus the shared ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub telemetry: TelemetrySettings,
    pub model: ModelSettings,
    pub registry: RegistrySettings,
    pub model_server: ModelServerSettings,
    pub backend: BackendSettings,
    pub ui: UiSettings,
    pub dashboard: DashboardSettings,
    pub database: DatabaseSettings,
    pub pipeline: PipelineSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Folder for the services' log files (`app.log`, `stage1.log`, ...).
    pub log_dir: PathBuf,
    /// Default `tracing` filter; `RUST_LOG` wins when set.
    pub level: String,
    /// Write JSON lines instead of human-readable text.
    pub json: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_dir: PathBuf::from("logs"),
            level: "info,tower_http=info".into(),
            json: false,
        }
    }
}

/// Which network the model crate builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Resnet18,
    Resnet50,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    pub architecture: Architecture,
    /// Quick, Draw! `.npy` files, one per category.
    pub data_dir: PathBuf,
    /// Ordered category names; fixes the label index.
    pub categories_file: PathBuf,
    /// Threads libtorch may use (0 = all cores).
    pub threads: usize,
}

/// A libtorch thread count as configured (`model.threads`, a CLI flag): 0 means one per core.
pub fn resolve_threads(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            architecture: Architecture::Resnet50,
            data_dir: PathBuf::from("../shared/data/quickdraw/train"),
            categories_file: PathBuf::from("../shared/data/quickdraw/categories.txt"),
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// A directory of versions on this machine (the embedded default).
    Local,
    /// An MLflow tracking server's model registry.
    Mlflow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    pub kind: RegistryKind,
    /// Root of the local registry.
    pub local_dir: PathBuf,
    /// MLflow tracking server, used when `kind = "mlflow"`.
    pub mlflow_tracking_uri: String,
    pub model_name: String,
    /// The alias that marks the deployed version.
    pub alias: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            kind: RegistryKind::Local,
            local_dir: PathBuf::from("models/registry"),
            mlflow_tracking_uri: "http://127.0.0.1:5000".into(),
            model_name: "doodle-classifier".into(),
            alias: "champion".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelServerSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Most images in one forward pass. Smaller than the clients in flight lets the next batch
    /// queue while one is computed, so the machine never idles between passes (32 beat 64 at
    /// 64 clients, docs/benchmarks.md).
    pub max_batch_size: usize,
    /// How long the batcher waits for more requests once one arrived (0 = never).
    pub max_wait_ms: u64,
    /// Under load — when the previous forward pass served more than one request — wait up to
    /// this long for more before the next pass (0 = never), but only until the batch is as
    /// large as that pass was. Concurrent clients' requests arrive spread over a few
    /// milliseconds (more through the backend, which shares the CPU); waiting for them fills
    /// the batch instead of splitting it, while a lone client never waits.
    pub wait_under_load_ms: u64,
    /// Requests waiting for the model before new ones get 429.
    pub queue_capacity: usize,
    /// A request not answered within this many milliseconds gets 504.
    pub deadline_ms: u64,
    /// How often the registry is polled for a new deployed version (0 = never).
    pub poll_interval_secs: u64,
    /// Most images in one request.
    pub max_images_per_request: usize,
    pub body_limit_bytes: usize,
    /// Serve from a copy of the network with BatchNorm folded into the convolutions (same
    /// answers, fewer operators; checked against the checkpoint when a version loads).
    pub fold_batchnorm: bool,
    /// With `fold_batchnorm`: one single-threaded inference worker per libtorch thread
    /// (`model.threads`), each taking its own batches from the queue, instead of one worker
    /// whose every operator is split across the threads. A worker that finds the others idle
    /// splits its pass into one slice per thread (docs/benchmarks.md, "Model server").
    pub split_batches: bool,
    /// Average each drawing's answer with its mirror image's when the checkpoint was validated
    /// that way (its metadata's `tta_hflip`). `false` answers from the drawing alone: half the
    /// compute per drawing, slightly lower accuracy (docs/benchmarks.md, "Model").
    pub mirror_tta: bool,
}

impl ModelServerSettings {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl Default for ModelServerSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5002,
            max_batch_size: 32,
            max_wait_ms: 0,
            wait_under_load_ms: 6,
            queue_capacity: 1024,
            deadline_ms: 10_000,
            poll_interval_secs: 10,
            max_images_per_request: 256,
            body_limit_bytes: 16 * 1024 * 1024,
            fold_batchnorm: true,
            split_batches: true,
            mirror_tta: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Where `/save-image/` writes `<category>/<name>.png` (the design's `IMG_DATA_LOCATION`).
    pub img_data_location: PathBuf,
    /// The model server's scoring URL (the design's `MLFLOW_HOSTED_MODEL_URL`).
    pub model_server_url: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS (the UI).
    pub cors_origins: Vec<String>,
}

impl BackendSettings {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            img_data_location: PathBuf::from("./uploaded_img_data/category"),
            model_server_url: "http://localhost:5002/invocations/".into(),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 10_000,
            body_limit_bytes: 1024 * 1024,
            cors_origins: vec![
                "http://localhost:9080".into(),
                "http://127.0.0.1:9080".into(),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Folder holding the page (`index.html`, scripts, styles).
    pub static_dir: PathBuf,
    /// The backend as the browser reaches it.
    pub backend_url: String,
}

impl UiSettings {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9080,
            static_dir: PathBuf::from("ui"),
            backend_url: "http://localhost:8000".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Runs in a `GET /pipeline_runs` without `limit` (the newest ones; a `Link` header points
    /// at the next page).
    pub default_limit: u32,
    /// The most runs one request may ask for (a larger `limit` is cut to this).
    pub max_limit: u32,
    /// `GET /pipeline_runs/{id}/stages/{n}/log` answers the last this-many bytes of the log
    /// (whole lines). The stage logs are `telemetry.log_dir/runs/<run_id>/stage<N>.log`.
    pub log_tail_bytes: u64,
    /// A request waits at most this long for a database connection before it gets 503.
    pub db_timeout_ms: u64,
}

impl DashboardSettings {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8001,
            default_limit: 100,
            max_limit: 1000,
            log_tail_bytes: 64 * 1024,
            db_timeout_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://...` (embedded default) or `postgres://...` (docker-compose).
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://doodle.db?mode=rwc".into(),
        }
    }
}

/// The retraining pipeline: the orchestrator and its seven stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// The git + DVC repository of the users' drawings (created with `git init` + `dvc init`
    /// when absent). The base training data (`model.data_dir`) is never written.
    pub data_repo: PathBuf,
    /// The folder inside `data_repo` that DVC tracks: `old/` and `new/`, one `<category>.npy`
    /// each (one plain folder name).
    pub data_folder: String,
    /// Run lock, data lock and the journals of stages 2 and 3 (never tracked by DVC).
    pub state_dir: PathBuf,
    /// Unreadable PNGs are moved here by stage 3 (`<category>/<file>`).
    pub quarantine_dir: PathBuf,
    /// Fewer new PNGs than this: stage 1 is complete and stages 2–7 are not triggered.
    pub file_threshold: u64,
    /// `dvc` executable (a name on PATH or a path).
    pub dvc_command: String,
    /// `git` executable (a name on PATH or a path).
    pub git_command: String,
    /// A local folder used as the DVC remote; `dvc push` after each commit when set ("" = none).
    pub dvc_remote: String,
    /// Time between scheduled runs (`pipeline-orchestrator --every` overrides), e.g. `30m`, `1h`.
    pub schedule_every: String,
    /// Per-stage time limit in seconds; past it the stage's whole process group is killed.
    pub stage_timeout_secs: [u64; 7],
    /// Each stage's command line. A program without a `/` is looked for next to the
    /// orchestrator's own binary first, then on PATH.
    pub stage_commands: [Vec<String>; 7],
    /// Stage 5: epochs of fine-tuning the deployed model.
    pub retrain_epochs: usize,
    /// Stage 5: time budget for training, in minutes (0 = none); fewer epochs when it would
    /// overrun.
    pub retrain_max_minutes: f64,
    /// Stage 5: at most this many training drawings per category (a seeded sample), so one
    /// flooded category cannot drown the others (0 = no cap).
    pub retrain_max_per_class: usize,
    /// Stage 5: train every layer, not only the final one.
    pub retrain_unfreeze_all: bool,
    /// Stage 5: share of the training drawings held out to pick the best epoch.
    pub retrain_val_fraction: f64,
    pub retrain_batch_size: usize,
    pub retrain_learning_rate: f64,
    /// Stage 5: seed of the per-category cap, the validation split, shuffling and augmentation.
    pub retrain_seed: u64,
    /// Share of the users' drawings in the fixed evaluation set (chosen by a hash of each
    /// drawing's bytes, so a drawing is in it forever or never).
    pub eval_user_share: f64,
    /// Stage 6: the candidate's top-1 on the categories both models know may be at most this
    /// much below the deployed model's (0.005 = half a point).
    pub gate_tolerance: f64,
    /// Stage 6: no known category's top-1 may drop by more than this.
    pub gate_max_class_drop: f64,
    /// Stage 6: every new category needs at least this top-1 ...
    pub gate_min_new_class_accuracy: f64,
    /// ... on at least this many evaluation drawings.
    pub gate_min_new_class_drawings: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        let command = |name: &str| vec![name.to_string()];
        Self {
            data_repo: PathBuf::from("data/pipeline"),
            data_folder: "drawings".into(),
            state_dir: PathBuf::from("data/pipeline-state"),
            quarantine_dir: PathBuf::from("data/quarantine"),
            file_threshold: 20,
            dvc_command: "dvc".into(),
            git_command: "git".into(),
            dvc_remote: String::new(),
            schedule_every: "1h".into(),
            stage_timeout_secs: [300, 1800, 1800, 1800, 7200, 3600, 300],
            stage_commands: [
                command("stage1-scan"),
                command("stage2-merge"),
                command("stage3-convert"),
                command("stage4-version"),
                command("stage5-retrain"),
                command("stage6-register"),
                command("stage7-clean"),
            ],
            retrain_epochs: 3,
            retrain_max_minutes: 60.0,
            retrain_max_per_class: 5000,
            retrain_unfreeze_all: false,
            retrain_val_fraction: 0.1,
            retrain_batch_size: 128,
            retrain_learning_rate: 0.05,
            retrain_seed: 42,
            eval_user_share: 0.1,
            gate_tolerance: 0.005,
            gate_max_class_drop: 0.05,
            gate_min_new_class_accuracy: 0.6,
            gate_min_new_class_drawings: 5,
        }
    }
}

/// A duration as people write it in the configuration: `90s`, `30m`, `1h`, `2d` (one number
/// and one unit; `s`, `m`, `h` or `d`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: unit `{unit}` is not s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
}

impl Settings {
    /// Load defaults → config file → environment, as described in the module docs.
    pub fn load() -> Result<Self, ConfigError> {
        let path = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
        match path {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::Read {
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("not found (named by {CONFIG_ENV})"),
                        ),
                        path,
                    });
                }
                Self::load_from(Some(&path))
            }
            None => {
                let default = Path::new("config.toml");
                Self::load_from(default.is_file().then_some(default))
            }
        }
    }

    /// Load defaults → the given file (if any) → environment.
    pub fn load_from(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let settings: Settings = figment
            // Only `DOODLE_<TABLE>__<KEY>`: other DOODLE_ variables (DOODLE_CONFIG, the
            // orchestrator's DOODLE_RUN_ID for its stages, test settings) are not settings.
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            )
            .merge(
                Env::raw()
                    .only(&["IMG_DATA_LOCATION"])
                    .map(|_| "backend.img_data_location".into()),
            )
            .merge(
                Env::raw()
                    .only(&["MLFLOW_HOSTED_MODEL_URL"])
                    .map(|_| "backend.model_server_url".into()),
            )
            .extract()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks serde cannot express: value ranges and URL shapes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                message: message.into(),
            }
        }
        fn http_url(key: &'static str, value: &str) -> Result<(), ConfigError> {
            match url::Url::parse(value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Ok(())
                }
                Ok(_) => Err(invalid(key, format!("`{value}` is not an http(s) URL"))),
                Err(err) => Err(invalid(key, format!("`{value}` is not a URL: {err}"))),
            }
        }

        http_url("backend.model_server_url", &self.backend.model_server_url)?;
        http_url("ui.backend_url", &self.ui.backend_url)?;
        http_url(
            "registry.mlflow_tracking_uri",
            &self.registry.mlflow_tracking_uri,
        )?;
        for origin in &self.backend.cors_origins {
            http_url("backend.cors_origins", origin)?;
        }
        if self.model_server.max_batch_size == 0 {
            return Err(invalid("model_server.max_batch_size", "must be at least 1"));
        }
        if self.model_server.queue_capacity == 0 {
            return Err(invalid("model_server.queue_capacity", "must be at least 1"));
        }
        if self.model_server.max_images_per_request == 0 {
            return Err(invalid(
                "model_server.max_images_per_request",
                "must be at least 1",
            ));
        }
        if self.model_server.deadline_ms == 0 {
            return Err(invalid("model_server.deadline_ms", "must be at least 1"));
        }
        if self.backend.request_timeout_ms == 0 {
            return Err(invalid("backend.request_timeout_ms", "must be at least 1"));
        }
        if self.backend.connect_timeout_ms == 0 {
            return Err(invalid("backend.connect_timeout_ms", "must be at least 1"));
        }
        if self.backend.body_limit_bytes < 1024 {
            return Err(invalid("backend.body_limit_bytes", "must be at least 1024"));
        }
        let d = &self.dashboard;
        if d.max_limit == 0 {
            return Err(invalid("dashboard.max_limit", "must be at least 1"));
        }
        if d.default_limit == 0 || d.default_limit > d.max_limit {
            return Err(invalid(
                "dashboard.default_limit",
                "must be between 1 and dashboard.max_limit",
            ));
        }
        if d.log_tail_bytes == 0 {
            return Err(invalid("dashboard.log_tail_bytes", "must be at least 1"));
        }
        if d.db_timeout_ms == 0 {
            return Err(invalid("dashboard.db_timeout_ms", "must be at least 1"));
        }
        if self.registry.model_name.trim().is_empty() {
            return Err(invalid("registry.model_name", "must not be empty"));
        }
        if self.registry.alias.trim().is_empty() {
            return Err(invalid("registry.alias", "must not be empty"));
        }
        self.validate_pipeline()?;
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err(invalid(
                "database.url",
                format!(
                    "`{}` is neither a sqlite: nor a postgres: URL",
                    self.database.url
                ),
            ));
        }
        Ok(())
    }

    fn validate_pipeline(&self) -> Result<(), ConfigError> {
        let p = &self.pipeline;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        let folder = std::path::Path::new(&p.data_folder);
        if !matches!(
            folder.components().collect::<Vec<_>>().as_slice(),
            [std::path::Component::Normal(_)]
        ) || p.data_folder.starts_with('.')
        {
            return Err(invalid(
                "pipeline.data_folder",
                format!("`{}` must be one plain folder name", p.data_folder),
            ));
        }
        parse_duration(&p.schedule_every).map_err(|m| invalid("pipeline.schedule_every", m))?;
        if p.stage_timeout_secs.contains(&0) {
            return Err(invalid(
                "pipeline.stage_timeout_secs",
                "every timeout must be at least 1 second".into(),
            ));
        }
        if let Some(n) = p
            .stage_commands
            .iter()
            .position(|c| c.is_empty() || c[0].is_empty())
        {
            return Err(invalid(
                "pipeline.stage_commands",
                format!("stage {} has an empty command", n + 1),
            ));
        }
        self.validate_retrain()
    }

    /// The retrain stage's and the gate's numbers.
    fn validate_retrain(&self) -> Result<(), ConfigError> {
        let p = &self.pipeline;
        let check = |key: &'static str, ok: bool, rule: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    message: rule.to_string(),
                })
            }
        };
        let fraction = |v: f64| v > 0.0 && v < 1.0;
        let share = |v: f64| (0.0..=1.0).contains(&v);
        check(
            "pipeline.retrain_epochs",
            p.retrain_epochs >= 1,
            "must be at least 1",
        )?;
        check(
            "pipeline.retrain_max_minutes",
            p.retrain_max_minutes >= 0.0 && p.retrain_max_minutes.is_finite(),
            "must be 0 (no budget) or a positive number of minutes",
        )?;
        check(
            "pipeline.retrain_val_fraction",
            fraction(p.retrain_val_fraction),
            "must be between 0 and 1",
        )?;
        check(
            "pipeline.retrain_batch_size",
            p.retrain_batch_size >= 2,
            "must be at least 2",
        )?;
        check(
            "pipeline.retrain_learning_rate",
            p.retrain_learning_rate > 0.0 && p.retrain_learning_rate.is_finite(),
            "must be positive",
        )?;
        check(
            "pipeline.eval_user_share",
            fraction(p.eval_user_share),
            "must be between 0 and 1",
        )?;
        check(
            "pipeline.gate_tolerance",
            share(p.gate_tolerance),
            "must be between 0 and 1",
        )?;
        check(
            "pipeline.gate_max_class_drop",
            share(p.gate_max_class_drop),
            "must be between 0 and 1",
        )?;
        check(
            "pipeline.gate_min_new_class_accuracy",
            share(p.gate_min_new_class_accuracy),
            "must be between 0 and 1",
        )
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    fn repo_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.toml")
    }

    #[test]
    fn committed_config_toml_parses_and_matches_the_ports_contract() {
        Jail::expect_with(|_| {
            let settings = Settings::load_from(Some(&repo_config())).expect("config.toml parses");
            assert_eq!(settings.model_server.port, 5002);
            assert_eq!(settings.backend.port, 8000);
            assert_eq!(settings.ui.port, 9080);
            assert_eq!(settings.dashboard.port, 8001);
            assert_eq!(
                settings.backend.img_data_location,
                PathBuf::from("./uploaded_img_data/category")
            );
            assert_eq!(
                settings.backend.model_server_url,
                "http://localhost:5002/invocations/"
            );
            Ok(())
        });
    }

    #[test]
    fn committed_config_toml_spells_out_every_default() {
        // The file documents the system: it should not silently drift from the code.
        let text = std::fs::read_to_string(repo_config()).unwrap();
        let from_file: Settings = toml::from_str(&text).unwrap();
        assert_eq!(from_file, Settings::default());
    }

    #[test]
    fn environment_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[backend]\nport = 8100\n")?;
            jail.set_env("DOODLE_BACKEND__PORT", "8200");
            jail.set_env("DOODLE_MODEL_SERVER__MAX_BATCH_SIZE", "8");
            let s = Settings::load_from(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(s.backend.port, 8200);
            assert_eq!(s.model_server.max_batch_size, 8);
            Ok(())
        });
    }

    #[test]
    fn other_doodle_variables_are_not_settings() {
        Jail::expect_with(|jail| {
            jail.set_env("DOODLE_RUN_ID", "7");
            jail.set_env("DOODLE_STAGE", "3");
            jail.set_env("DOODLE_TEST_POSTGRES_URL", "postgres://x/y");
            assert_eq!(Settings::load_from(None).unwrap(), Settings::default());
            jail.set_env("DOODLE_BAKEND__PORT", "1");
            let err = Settings::load_from(None).unwrap_err().to_string();
            assert!(
                err.contains("bakend"),
                "a mistyped table is still refused: {err}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_design_variables_keep_working() {
        Jail::expect_with(|jail| {
            jail.set_env("IMG_DATA_LOCATION", "/srv/images");
            jail.set_env("MLFLOW_HOSTED_MODEL_URL", "http://model:5002/invocations/");
            let s = Settings::load_from(None).unwrap();
            assert_eq!(s.backend.img_data_location, PathBuf::from("/srv/images"));
            assert_eq!(s.backend.model_server_url, "http://model:5002/invocations/");
            Ok(())
        });
    }

    #[test]
    fn defaults_match_the_design_without_any_file() {
        Jail::expect_with(|_| {
            let s = Settings::load_from(None).unwrap();
            assert_eq!(s, Settings::default());
            assert_eq!(
                s.backend.img_data_location,
                PathBuf::from("./uploaded_img_data/category")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_names_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[backend]\nprot = 8100\n")?;
            let err = Settings::load_from(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("prot"), "{err}");
            assert!(err.contains("backend"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_table_names_the_table() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[bakend]\nport = 8100\n")?;
            let err = Settings::load_from(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("bakend"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_value_in_environment_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("DOODLE_BACKEND__PORT", "eighty");
            let err = Settings::load_from(None).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("backend.port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn out_of_range_port_names_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[ui]\nport = 70000\n")?;
            let err = Settings::load_from(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("ui.port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_url_and_zero_batch_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("MLFLOW_HOSTED_MODEL_URL", "localhost:5002");
            let err = Settings::load_from(None).unwrap_err().to_string();
            assert!(err.contains("backend.model_server_url"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[model_server]\nmax_batch_size = 0\n")?;
            let err = Settings::load_from(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("model_server.max_batch_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_enum_value_lists_the_choices() {
        Jail::expect_with(|jail| {
            jail.set_env("DOODLE_MODEL__ARCHITECTURE", "resnet99");
            let err = Settings::load_from(None).unwrap_err().to_string();
            assert!(err.contains("resnet99"), "{err}");
            assert!(err.contains("resnet50"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("30m"),
            Ok(std::time::Duration::from_secs(1800))
        );
        assert_eq!(
            parse_duration("1h"),
            Ok(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration("2d"),
            Ok(std::time::Duration::from_secs(172_800))
        );
        for bad in ["", "10", "h", "1.5h", "0m", "1w", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bad_pipeline_values_name_the_key() {
        for (file, key) in [
            (
                "[pipeline]\nschedule_every = \"soon\"\n",
                "pipeline.schedule_every",
            ),
            (
                "[pipeline]\ndata_folder = \"../up\"\n",
                "pipeline.data_folder",
            ),
            (
                "[pipeline]\nstage_timeout_secs = [1, 1, 0, 1, 1, 1, 1]\n",
                "pipeline.stage_timeout_secs",
            ),
            (
                "[pipeline]\nretrain_val_fraction = 1.0\n",
                "pipeline.retrain_val_fraction",
            ),
            (
                "[pipeline]\neval_user_share = 0.0\n",
                "pipeline.eval_user_share",
            ),
            (
                "[pipeline]\ngate_tolerance = -0.1\n",
                "pipeline.gate_tolerance",
            ),
            (
                "[pipeline]\nretrain_epochs = 0\n",
                "pipeline.retrain_epochs",
            ),
        ] {
            assert_rejected_naming(file, key);
        }
    }

    /// Loading `file` fails with a message naming `key`.
    fn assert_rejected_naming(file: &str, key: &str) {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", file)?;
            let err = Settings::load_from(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_dashboard_values_name_the_key() {
        for (file, key) in [
            ("[dashboard]\nmax_limit = 0\n", "dashboard.max_limit"),
            (
                "[dashboard]\ndefault_limit = 2000\nmax_limit = 1000\n",
                "dashboard.default_limit",
            ),
            (
                "[dashboard]\nlog_tail_bytes = 0\n",
                "dashboard.log_tail_bytes",
            ),
            (
                "[dashboard]\ndb_timeout_ms = 0\n",
                "dashboard.db_timeout_ms",
            ),
        ] {
            assert_rejected_naming(file, key);
        }
    }

    #[test]
    fn missing_named_file_is_an_error() {
        Jail::expect_with(|jail| {
            jail.set_env(CONFIG_ENV, "nope.toml");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("nope.toml"), "{err}");
            Ok(())
        });
    }
}
