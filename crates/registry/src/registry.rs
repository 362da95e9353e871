//! One handle over both registries, built from `[registry]` in config.toml, so callers (the
//! pipeline's register stage, the CLI) write each operation once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use doodle_core::Settings;
use doodle_core::config::RegistryKind;

use crate::{
    AliasEvent, Deployed, LocalRegistry, MlflowRegistry, RegistryError, Result, RunRecord,
};

/// The local registry or an MLflow one. Versions are strings ("3") for both.
#[derive(Debug, Clone)]
pub enum Registry {
    Local(LocalRegistry),
    Mlflow(MlflowRegistry),
}

impl Registry {
    /// The registry `registry.kind` names (`local_dir`, `mlflow_tracking_uri`, `model_name`;
    /// MLflow downloads are cached in `<local_dir>/.mlflow-cache`, as the model server does).
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let r = &settings.registry;
        Ok(match r.kind {
            RegistryKind::Local => Self::Local(LocalRegistry::new(&r.local_dir, &r.model_name)?),
            RegistryKind::Mlflow => Self::Mlflow(MlflowRegistry::from_settings(r)?),
        })
    }

    /// The registered model's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Local(r) => r.name(),
            Self::Mlflow(r) => &r.model_name,
        }
    }

    /// Register a checkpoint folder as a new version without moving any alias; the new
    /// version. `record.tags` become the version's tags (MLflow: the run's too, with the
    /// run's params and metrics; the local registry keeps only the tags).
    pub async fn register(&self, checkpoint: &Path, record: &RunRecord) -> Result<String> {
        match self {
            Self::Local(r) => {
                let (r, checkpoint, tags) = (r.clone(), checkpoint.to_owned(), record.tags.clone());
                let v = blocking(move || r.register(&checkpoint, tags)).await?;
                Ok(v.version.to_string())
            }
            Self::Mlflow(r) => Ok(r.register(checkpoint, record, None).await?.version),
        }
    }

    /// The version `alias` names and its checkpoint folder on disk (MLflow: downloaded into
    /// the cache once).
    pub async fn deployed(&self, alias: &str) -> Result<Option<Deployed>> {
        match self {
            Self::Local(r) => {
                let (r, alias) = (r.clone(), alias.to_owned());
                blocking(move || r.deployed(&alias)).await
            }
            Self::Mlflow(r) => Ok(r.deployed(alias).await?),
        }
    }

    /// The version `alias` names, without fetching it.
    pub async fn alias_version(&self, alias: &str) -> Result<Option<String>> {
        match self {
            Self::Local(r) => {
                let (r, alias) = (r.clone(), alias.to_owned());
                let version = blocking(move || r.alias(&alias)).await?;
                Ok(version.map(|v| v.version.to_string()))
            }
            Self::Mlflow(r) => Ok(r
                .client
                .version_by_alias(&r.model_name, alias)
                .await?
                .map(|v| v.version)),
        }
    }

    /// Any version's checkpoint folder on disk (MLflow: downloaded into the cache once).
    pub async fn version_dir(&self, version: &str) -> Result<PathBuf> {
        match self {
            Self::Local(r) => {
                let (r, version) = (r.clone(), number(version)?);
                blocking(move || r.version(version)).await.map(|v| v.dir)
            }
            Self::Mlflow(r) => r.version_dir(version).await,
        }
    }

    /// Point `alias` at `version` and record who moved it and why.
    pub async fn move_alias(
        &self,
        alias: &str,
        version: &str,
        by: &str,
        reason: &str,
    ) -> Result<AliasEvent> {
        match self {
            Self::Local(r) => {
                let (r, version) = (r.clone(), number(version)?);
                let (alias, by, reason) = (alias.to_owned(), by.to_owned(), reason.to_owned());
                blocking(move || r.move_alias(&alias, version, &by, &reason)).await
            }
            Self::Mlflow(r) => r.move_alias(alias, version, by, reason).await,
        }
    }

    /// Every recorded move of `alias`, oldest first.
    pub async fn alias_history(&self, alias: &str) -> Result<Vec<AliasEvent>> {
        match self {
            Self::Local(r) => {
                let (r, alias) = (r.clone(), alias.to_owned());
                blocking(move || r.alias_history(&alias)).await
            }
            Self::Mlflow(r) => r.alias_history(alias).await,
        }
    }

    /// Move `alias` back to the previous champion ([`crate::history`] says which).
    pub async fn rollback(&self, alias: &str, by: &str) -> Result<AliasEvent> {
        self.rollback_with_reason(alias, by, "").await
    }

    /// [`rollback`](Self::rollback), with `note` added to the recorded reason.
    pub async fn rollback_with_reason(
        &self,
        alias: &str,
        by: &str,
        note: &str,
    ) -> Result<AliasEvent> {
        match self {
            Self::Local(r) => {
                let r = r.clone();
                let (alias, by, note) = (alias.to_owned(), by.to_owned(), note.to_owned());
                blocking(move || r.rollback_with_reason(&alias, &by, &note)).await
            }
            Self::Mlflow(r) => r.rollback_with_reason(alias, by, note).await,
        }
    }

    /// Set one tag on a version (local: in its `version.json`; MLflow: a model-version tag).
    pub async fn set_version_tag(&self, version: &str, key: &str, value: &str) -> Result<()> {
        match self {
            Self::Local(r) => {
                let (r, version) = (r.clone(), number(version)?);
                let (key, value) = (key.to_owned(), value.to_owned());
                blocking(move || r.set_version_tag(version, &key, &value)).await
            }
            Self::Mlflow(r) => r.set_version_tag(version, key, value).await,
        }
    }

    /// A version's tags (the data version, the pipeline run, the gate's decision, ...).
    pub async fn version_tags(&self, version: &str) -> Result<BTreeMap<String, String>> {
        match self {
            Self::Local(r) => {
                let (r, version) = (r.clone(), number(version)?);
                Ok(blocking(move || r.version(version)).await?.tags)
            }
            Self::Mlflow(r) => {
                let v = r.client.model_version(&r.model_name, version).await?;
                Ok(v.tags.into_iter().map(|t| (t.key, t.value)).collect())
            }
        }
    }
}

/// A version string as the number both registries use.
pub(crate) fn number(version: &str) -> Result<u64> {
    version
        .trim()
        .parse()
        .map_err(|_| RegistryError::Invalid(format!("{version:?} is not a version number")))
}

/// Run the local registry's file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(RegistryError::Invalid(format!(
            "a registry task was cancelled: {err}"
        ))),
    }
}
