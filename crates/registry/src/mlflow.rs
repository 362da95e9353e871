//! A thin client for MLflow's tracking and model-registry REST API (protocols §2).
//!
//! Experiments, runs (params, metrics, tags), artifacts through the tracking server's
//! artifact proxy (`--serve-artifacts`), registered models, model versions, tags and aliases.
//! On top of those, [`MlflowRegistry`] stores a checkpoint folder as a run's artifacts and a
//! registered model version, fetches the version an alias names into a local cache, and moves
//! aliases with a history kept on the server (registered-model tags, see `alias.rs`), so every
//! client sees the same one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Deployed;

mod alias;
pub use alias::HISTORY_TAG_PREFIX;

/// The tag the design used to mark a deployed version (`deployment = production`).
pub const DEPLOYMENT_TAG: &str = "deployment";

/// The MLflow experiment our runs are recorded in.
pub const MLFLOW_EXPERIMENT: &str = "doodle";

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("MLflow {method} {path}: {source}")]
    Http {
        method: Method,
        path: String,
        source: reqwest::Error,
    },
    /// MLflow answered with its `{"error_code", "message"}` body.
    #[error("MLflow {method} {path}: {status} {error_code}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        error_code: String,
        message: String,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MLflow answered something unexpected: {0}")]
    Protocol(String),
}

impl MlflowError {
    /// MLflow's error code, when the server sent one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            MlflowError::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }
}

pub type Result<T, E = MlflowError> = std::result::Result<T, E>;

/// int64 fields arrive as JSON numbers or strings depending on the server's serializer.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(i64),
        Str(String),
    }
    Ok(match Option::<NumOrString>::deserialize(d)? {
        Some(NumOrString::Num(n)) => Some(n),
        Some(NumOrString::Str(s)) => s.parse().ok(),
        None => None,
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    #[serde(default)]
    pub artifact_location: String,
    #[serde(default)]
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub artifact_uri: String,
    #[serde(default, deserialize_with = "int64")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "int64")]
    pub end_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Param {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    #[serde(deserialize_with = "int64_required")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "int64_required")]
    pub step: i64,
}

fn int64_required<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    int64(d).map(Option::unwrap_or_default)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub params: Vec<Param>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl ModelVersion {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Alias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ArtifactFile {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
    #[serde(default, deserialize_with = "int64")]
    pub file_size: Option<i64>,
}

/// The REST client.
#[derive(Debug, Clone)]
pub struct MlflowClient {
    base: String,
    http: reqwest::Client,
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

impl MlflowClient {
    /// `tracking_uri` like `http://127.0.0.1:5000`.
    pub fn new(tracking_uri: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            // MLflow's server closes idle connections after 5 s; a pooled one reused later
            // fails with "error sending request". Drop them well before.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| MlflowError::Http {
                method: Method::GET,
                path: tracking_uri.to_owned(),
                source,
            })?;
        Ok(Self {
            base: tracking_uri.trim_end_matches('/').to_owned(),
            http,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let bytes = self.answer(method.clone(), path, request).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| MlflowError::Protocol(format!("{method} {path}: {e}")))
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// POST for endpoints that answer `{}`.
    async fn post_unit(&self, path: &str, body: Value) -> Result<()> {
        self.post::<Value>(path, body).await.map(drop)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        self.call(Method::GET, path, query, None).await
    }

    // --- experiments -----------------------------------------------------------------------

    pub async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        #[derive(Deserialize)]
        struct R {
            experiment: Experiment,
        }
        match self
            .get::<R>("experiments/get-by-name", &[("experiment_name", name)])
            .await
        {
            Ok(r) if r.experiment.lifecycle_stage != "deleted" => Ok(Some(r.experiment)),
            Ok(_) => Ok(None),
            Err(e) if e.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_experiment(&self, name: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct R {
            experiment_id: String,
        }
        let r: R = self
            .post("experiments/create", json!({ "name": name }))
            .await?;
        Ok(r.experiment_id)
    }

    /// The experiment's id, creating it if needed (a concurrent creator is fine).
    pub async fn experiment_id(&self, name: &str) -> Result<String> {
        if let Some(e) = self.experiment_by_name(name).await? {
            return Ok(e.experiment_id);
        }
        match self.create_experiment(name).await {
            Ok(id) => Ok(id),
            Err(e) if e.error_code() == Some("RESOURCE_ALREADY_EXISTS") => self
                .experiment_by_name(name)
                .await?
                .map(|e| e.experiment_id)
                .ok_or_else(|| MlflowError::Protocol(format!("experiment {name:?} vanished"))),
            Err(e) => Err(e),
        }
    }

    // --- runs --------------------------------------------------------------------------------

    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[Tag],
    ) -> Result<Run> {
        #[derive(Deserialize)]
        struct R {
            run: Run,
        }
        let r: R = self
            .post(
                "runs/create",
                json!({ "experiment_id": experiment_id, "run_name": run_name,
                        "start_time": now_ms(), "tags": tags }),
            )
            .await?;
        Ok(r.run)
    }

    /// Mark a run FINISHED, FAILED or KILLED.
    pub async fn finish_run(&self, run_id: &str, status: &str) -> Result<()> {
        self.post_unit(
            "runs/update",
            json!({ "run_id": run_id, "status": status, "end_time": now_ms() }),
        )
        .await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        #[derive(Deserialize)]
        struct R {
            run: Run,
        }
        Ok(self.get::<R>("runs/get", &[("run_id", run_id)]).await?.run)
    }

    pub async fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.post_unit(
            "runs/log-parameter",
            json!({ "run_id": run_id, "key": key, "value": value }),
        )
        .await
    }

    pub async fn log_metric(&self, run_id: &str, key: &str, value: f64, step: i64) -> Result<()> {
        self.post_unit(
            "runs/log-metric",
            json!({ "run_id": run_id, "key": key, "value": value,
                        "timestamp": now_ms(), "step": step }),
        )
        .await
    }

    /// Params, metrics and tags in one call (MLflow limits: 100 params, 1000 metrics, 100 tags).
    pub async fn log_batch(
        &self,
        run_id: &str,
        params: &[Param],
        metrics: &[Metric],
        tags: &[Tag],
    ) -> Result<()> {
        self.post_unit(
            "runs/log-batch",
            json!({ "run_id": run_id, "params": params, "metrics": metrics, "tags": tags }),
        )
        .await
    }

    pub async fn set_run_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.post_unit(
            "runs/set-tag",
            json!({ "run_id": run_id, "key": key, "value": value }),
        )
        .await
    }

    // --- artifacts (through the tracking server's proxy) -----------------------------------

    /// `mlflow-artifacts:/1/<run>/artifacts` + `model/x` → the proxy URL for that file.
    fn artifact_url(&self, artifact_uri: &str, rel: &str) -> Result<String> {
        let path = artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .ok_or_else(|| {
                MlflowError::Protocol(format!(
                    "artifact URI {artifact_uri:?} is not served by the tracking server's artifact proxy (start it with --serve-artifacts)"
                ))
            })?;
        // `mlflow-artifacts://host:port/x` names another server; `mlflow-artifacts:/x` this one.
        let path = match path.strip_prefix("//") {
            Some(rest) => rest.split_once('/').map_or("", |(_, p)| p),
            None => path.trim_start_matches('/'),
        };
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|seg| seg == ".." || seg.is_empty()) {
            return Err(MlflowError::Protocol(format!(
                "unsafe artifact path {rel:?}"
            )));
        }
        Ok(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{path}/{rel}",
            self.base
        ))
    }

    async fn send_raw(&self, method: Method, url: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.body(body);
        }
        self.answer(method, url, request).await
    }

    /// Send a request; a success's body, or MLflow's `{"error_code", "message"}` as an error.
    async fn answer(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>> {
        let http_err = |source| MlflowError::Http {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(http_err)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(http_err)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(MlflowError::Api {
            method,
            path: path.to_owned(),
            status,
            error_code: body["error_code"].as_str().unwrap_or("UNKNOWN").to_owned(),
            message: body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
        })
    }

    pub async fn upload_artifact(
        &self,
        artifact_uri: &str,
        rel: &str,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let url = self.artifact_url(artifact_uri, rel)?;
        self.send_raw(Method::PUT, &url, Some(bytes))
            .await
            .map(drop)
    }

    pub async fn download_artifact(&self, artifact_uri: &str, rel: &str) -> Result<Vec<u8>> {
        let url = self.artifact_url(artifact_uri, rel)?;
        self.send_raw(Method::GET, &url, None).await
    }

    /// Files directly under `rel` in a run's artifacts (basenames).
    pub async fn list_artifacts(&self, artifact_uri: &str, rel: &str) -> Result<Vec<ArtifactFile>> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            files: Vec<ArtifactFile>,
        }
        let dir = self.artifact_url(artifact_uri, rel)?;
        let (base, path) = dir
            .split_once("/api/2.0/mlflow-artifacts/artifacts/")
            .expect("built above. This is a bug.");
        let url = format!("{base}/api/2.0/mlflow-artifacts/artifacts");
        let response = self
            .http
            .get(&url)
            .query(&[("path", path)])
            .send()
            .await
            .map_err(|source| MlflowError::Http {
                method: Method::GET,
                path: url.clone(),
                source,
            })?;
        let r: R = response.json().await.map_err(|source| MlflowError::Http {
            method: Method::GET,
            path: url,
            source,
        })?;
        Ok(r.files)
    }

    // --- the model registry --------------------------------------------------------------------

    /// Create a registered model; one that already exists is fine.
    pub async fn ensure_registered_model(&self, name: &str) -> Result<()> {
        match self
            .post::<Value>("registered-models/create", json!({ "name": name }))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.error_code() == Some("RESOURCE_ALREADY_EXISTS") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn registered_model(&self, name: &str) -> Result<RegisteredModel> {
        #[derive(Deserialize)]
        struct R {
            registered_model: RegisteredModel,
        }
        Ok(self
            .get::<R>("registered-models/get", &[("name", name)])
            .await?
            .registered_model)
    }

    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[Tag],
    ) -> Result<ModelVersion> {
        #[derive(Deserialize)]
        struct R {
            model_version: ModelVersion,
        }
        let r: R = self
            .post(
                "model-versions/create",
                json!({ "name": name, "source": source, "run_id": run_id, "tags": tags }),
            )
            .await?;
        Ok(r.model_version)
    }

    pub async fn model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        #[derive(Deserialize)]
        struct R {
            model_version: ModelVersion,
        }
        Ok(self
            .get::<R>(
                "model-versions/get",
                &[("name", name), ("version", version)],
            )
            .await?
            .model_version)
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.post_unit(
            "model-versions/set-tag",
            json!({ "name": name, "version": version, "key": key, "value": value }),
        )
        .await
    }

    /// Set (or replace) a tag on a registered model.
    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.post_unit(
            "registered-models/set-tag",
            json!({ "name": name, "key": key, "value": value }),
        )
        .await
    }

    /// Point `alias` at `version` (moving it if it exists).
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        self.post_unit(
            "registered-models/alias",
            json!({ "name": name, "alias": alias, "version": version }),
        )
        .await
    }

    /// The version `alias` names, or `None` when the alias (or the model) does not exist.
    pub async fn version_by_alias(&self, name: &str, alias: &str) -> Result<Option<ModelVersion>> {
        #[derive(Deserialize)]
        struct R {
            model_version: ModelVersion,
        }
        match self
            .get::<R>(
                "registered-models/alias",
                &[("name", name), ("alias", alias)],
            )
            .await
        {
            Ok(r) => Ok(Some(r.model_version)),
            Err(e)
                if matches!(
                    e.error_code(),
                    Some("RESOURCE_DOES_NOT_EXIST" | "INVALID_PARAMETER_VALUE")
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Versions of `name`, newest first.
    pub async fn search_model_versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
        }
        let filter = format!("name='{}'", name.replace('\'', "''"));
        let mut versions = self
            .get::<R>(
                "model-versions/search",
                &[("filter", filter.as_str()), ("max_results", "1000")],
            )
            .await?
            .model_versions;
        versions.sort_by_key(|v| std::cmp::Reverse(v.version.parse::<u64>().unwrap_or(0)));
        Ok(versions)
    }
}

/// A registry on an MLflow server: checkpoints as run artifacts, versions in the model registry.
#[derive(Debug, Clone)]
pub struct MlflowRegistry {
    pub client: MlflowClient,
    pub model_name: String,
    pub experiment: String,
    /// Where downloaded versions are kept (`<cache>/<model>/<version>/`).
    pub cache_dir: PathBuf,
}

/// What a training run records alongside a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub run_name: String,
    pub params: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub tags: BTreeMap<String, String>,
}

/// The artifact folder a checkpoint is uploaded to, inside the run's artifacts.
pub const MODEL_ARTIFACT_DIR: &str = "model";

impl MlflowRegistry {
    /// The registry `[registry]` names: its tracking server and model, runs in
    /// [`MLFLOW_EXPERIMENT`], downloads cached in `<local_dir>/.mlflow-cache`.
    pub fn from_settings(settings: &doodle_core::config::RegistrySettings) -> Result<Self> {
        Ok(Self {
            client: MlflowClient::new(&settings.mlflow_tracking_uri)?,
            model_name: settings.model_name.clone(),
            experiment: MLFLOW_EXPERIMENT.into(),
            cache_dir: settings.local_dir.join(".mlflow-cache"),
        })
    }

    /// Upload a checkpoint folder as a run's `model/` artifacts and register it as the next
    /// version of the model, with `record.tags` as the run's and the version's tags; with
    /// `alias`, point it at the new version (without a history event: see
    /// [`move_alias`](Self::move_alias)).
    pub async fn register(
        &self,
        checkpoint: &Path,
        record: &RunRecord,
        alias: Option<&str>,
    ) -> Result<ModelVersion> {
        let experiment_id = self.client.experiment_id(&self.experiment).await?;
        let run = self
            .client
            .create_run(
                &experiment_id,
                &record.run_name,
                &[Tag {
                    key: "mlflow.source.name".into(),
                    value: "doodle".into(),
                }],
            )
            .await?;
        let run_id = run.info.run_id.clone();
        let result = async {
            let params: Vec<Param> = record
                .params
                .iter()
                .map(|(k, v)| Param {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            let metrics: Vec<Metric> = record
                .metrics
                .iter()
                .map(|(k, v)| Metric {
                    key: k.clone(),
                    value: *v,
                    timestamp: now_ms(),
                    step: 0,
                })
                .collect();
            let tags: Vec<Tag> = record
                .tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            self.client
                .log_batch(&run_id, &params, &metrics, &tags)
                .await?;
            let mut entries: Vec<PathBuf> = std::fs::read_dir(checkpoint)
                .map_err(|source| MlflowError::Io {
                    action: "reading",
                    path: checkpoint.into(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for file in entries {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                let bytes = tokio::fs::read(&file)
                    .await
                    .map_err(|source| MlflowError::Io {
                        action: "reading",
                        path: file.clone(),
                        source,
                    })?;
                self.client
                    .upload_artifact(
                        &run.info.artifact_uri,
                        &format!("{MODEL_ARTIFACT_DIR}/{name}"),
                        bytes,
                    )
                    .await?;
            }
            self.client
                .ensure_registered_model(&self.model_name)
                .await?;
            let source = format!("{}/{MODEL_ARTIFACT_DIR}", run.info.artifact_uri);
            let version = self
                .client
                .create_model_version(&self.model_name, &source, &run_id, &tags)
                .await?;
            if let Some(alias) = alias {
                self.client
                    .set_alias(&self.model_name, alias, &version.version)
                    .await?;
                self.client
                    .set_model_version_tag(
                        &self.model_name,
                        &version.version,
                        DEPLOYMENT_TAG,
                        "production",
                    )
                    .await?;
            }
            Ok(version)
        }
        .await;
        let status = if result.is_ok() { "FINISHED" } else { "FAILED" };
        // Best effort: the run's status must not hide the error that failed it.
        let _ = self.client.finish_run(&run_id, status).await;
        result
    }

    /// The version `alias` names, downloaded into the cache (once), as a local folder.
    pub async fn deployed(&self, alias: &str) -> Result<Option<Deployed>> {
        let Some(version) = self
            .client
            .version_by_alias(&self.model_name, alias)
            .await?
        else {
            return Ok(None);
        };
        let dir = self.fetch(&version).await?;
        Ok(Some(Deployed {
            version: version.version,
            dir,
        }))
    }

    /// Download a version's files into `<cache>/<model>/<version>/` (atomically; reused after).
    pub async fn fetch(&self, version: &ModelVersion) -> Result<PathBuf> {
        let target = self.cache_dir.join(&self.model_name).join(&version.version);
        if target.is_dir() {
            return Ok(target);
        }
        let source = version.source.as_str();
        let run = self.client.get_run(&version.run_id).await?;
        let rel = source
            .strip_prefix(run.info.artifact_uri.as_str())
            .map(|r| r.trim_start_matches('/'))
            .ok_or_else(|| {
                MlflowError::Protocol(format!(
                    "version {} has source {source:?} outside its run's artifacts {:?}",
                    version.version, run.info.artifact_uri
                ))
            })?
            .to_owned();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| MlflowError::Io {
                action,
                path,
                source,
            }
        };
        let parent = target
            .parent()
            .expect("cache paths have a parent. This is a bug.");
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io("creating", parent))?;
        let staging = parent.join(format!(".download-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(io("creating", &staging))?;
        let result = async {
            for file in self
                .client
                .list_artifacts(&run.info.artifact_uri, &rel)
                .await?
            {
                if file.is_dir {
                    continue;
                }
                let name = file
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap_or(&file.path)
                    .to_owned();
                let bytes = self
                    .client
                    .download_artifact(&run.info.artifact_uri, &format!("{rel}/{name}"))
                    .await?;
                let path = staging.join(&name);
                tokio::fs::write(&path, bytes)
                    .await
                    .map_err(io("writing", &path))?;
            }
            match tokio::fs::rename(&staging, &target).await {
                Ok(()) => Ok(target.clone()),
                // Someone else finished the same download first.
                Err(_) if target.is_dir() => Ok(target.clone()),
                Err(e) => Err(io("renaming", &target)(e)),
            }
        }
        .await;
        if staging.exists() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        result
    }
}
