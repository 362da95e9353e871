//! Alias moves on an MLflow server, and their history.
//!
//! Each move is one registered-model tag, `doodle.alias_history.<alias>.<seq>.<id>`, holding
//! the event's JSON: `seq` is one more than the highest already there and `id` is random, so
//! two clients moving the alias at the same moment both keep their event (MLflow's set-tag
//! replaces a key) and are ordered by time between themselves. One tag per event keeps every
//! write small and independent however long the history grows; the price is one tag per
//! move on the model's page. A move sets the alias, then the design's `deployment=production`
//! tag on the version, then writes the event. MLflow has no lock to hold across those calls:
//! two clients moving the same alias at the same moment both keep their events, but the
//! `previous` each records is what it read before its own move.

use super::{DEPLOYMENT_TAG, MlflowError, MlflowRegistry, ModelVersion};
use crate::history::{self, AliasEvent};
use crate::{RegistryError, Result};

/// Registered-model tags that hold alias events start with this, then `<alias>.`.
pub const HISTORY_TAG_PREFIX: &str = "doodle.alias_history.";

/// MLflow keeps registered-model tag values in a 5000-character column.
const MAX_TAG_VALUE: usize = 5000;

impl MlflowRegistry {
    /// Point `alias` at `version` (which must exist), tag the version
    /// `deployment=production`, and record the move in the alias's history.
    pub async fn move_alias(
        &self,
        alias: &str,
        version: &str,
        by: &str,
        reason: &str,
    ) -> Result<AliasEvent> {
        self.move_recorded(alias, version, by, reason, false).await
    }

    /// Every recorded move of `alias`, oldest first (empty when it never moved).
    pub async fn alias_history(&self, alias: &str) -> Result<Vec<AliasEvent>> {
        Ok(self
            .history_entries(alias)
            .await?
            .into_iter()
            .map(|(_, event)| event)
            .collect())
    }

    /// Move `alias` back to the previous champion (which one: see [`crate::history`]); the
    /// move is recorded with the reason "rollback from version N".
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
        let current = self
            .client
            .version_by_alias(&self.model_name, alias)
            .await?
            .ok_or_else(|| {
                RegistryError::Invalid(format!("alias {alias:?} is not set: nothing to roll back"))
            })?
            .version;
        let history = self.alias_history(alias).await?;
        let target = history::rollback_target(alias, &history, &current)?.to_owned();
        let reason = history::rollback_reason(&current, note);
        self.move_recorded(alias, &target, by, &reason, true).await
    }

    /// A version's checkpoint folder, downloaded into the cache (once).
    pub async fn version_dir(&self, version: &str) -> Result<std::path::PathBuf> {
        let version = self.existing_version(version).await?;
        Ok(self.fetch(&version).await?)
    }

    /// Set (or replace) a tag on a version that exists.
    pub async fn set_version_tag(&self, version: &str, key: &str, value: &str) -> Result<()> {
        let version = self.existing_version(version).await?;
        Ok(self
            .client
            .set_model_version_tag(&self.model_name, &version.version, key, value)
            .await?)
    }

    /// One version, or [`RegistryError::NoSuchVersion`].
    async fn existing_version(&self, version: &str) -> Result<ModelVersion> {
        let number = crate::registry::number(version)?;
        match self
            .client
            .model_version(&self.model_name, &number.to_string())
            .await
        {
            Ok(v) => Ok(v),
            Err(e) if e.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => {
                Err(RegistryError::NoSuchVersion {
                    model: self.model_name.clone(),
                    version: number,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn move_recorded(
        &self,
        alias: &str,
        version: &str,
        by: &str,
        reason: &str,
        rollback: bool,
    ) -> Result<AliasEvent> {
        let version = self.existing_version(version).await?.version;
        let previous = self
            .client
            .version_by_alias(&self.model_name, alias)
            .await?
            .map(|v| v.version);
        self.client
            .set_alias(&self.model_name, alias, &version)
            .await?;
        self.client
            .set_model_version_tag(&self.model_name, &version, DEPLOYMENT_TAG, "production")
            .await?;
        let event = AliasEvent {
            rollback,
            ..AliasEvent::now(alias, version, previous, by, reason)
        };
        self.append_history(event).await
    }

    /// Store `event` as the next history tag; the event as stored (see [`fit_tag_value`]).
    async fn append_history(&self, event: AliasEvent) -> Result<AliasEvent> {
        let seq = self
            .history_entries(&event.alias)
            .await?
            .last()
            .map_or(1, |(seq, _)| seq + 1);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let key = format!("{HISTORY_TAG_PREFIX}{}.{seq:08}.{}", event.alias, &id[..8]);
        let (event, value) = fit_tag_value(event);
        self.client
            .set_registered_model_tag(&self.model_name, &key, &value)
            .await?;
        Ok(event)
    }

    /// `(seq, event)` for each of `alias`'s history tags, oldest first.
    async fn history_entries(&self, alias: &str) -> Result<Vec<(u64, AliasEvent)>> {
        let model = match self.client.registered_model(&self.model_name).await {
            Ok(model) => model,
            Err(e) if e.error_code() == Some("RESOURCE_DOES_NOT_EXIST") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let prefix = format!("{HISTORY_TAG_PREFIX}{alias}.");
        let mut entries = Vec::new();
        for tag in model.tags {
            let Some(seq) = tag
                .key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split('.').next())
                .and_then(|seq| seq.parse::<u64>().ok())
            else {
                continue;
            };
            let event: AliasEvent = serde_json::from_str(&tag.value).map_err(|e| {
                MlflowError::Protocol(format!(
                    "registered model {:?}: tag {} is not an alias event: {e}",
                    self.model_name, tag.key
                ))
            })?;
            entries.push((seq, event, tag.key));
        }
        entries.sort_by(|a, b| (a.0, &a.1.at, &a.2).cmp(&(b.0, &b.1.at, &b.2)));
        Ok(entries.into_iter().map(|(seq, e, _)| (seq, e)).collect())
    }
}

/// The event's JSON, halving its reason (then its `by`) until it fits in a tag value.
fn fit_tag_value(mut event: AliasEvent) -> (AliasEvent, String) {
    loop {
        let json = serde_json::to_string(&event).expect("an event serialises. This is a bug.");
        if json.len() <= MAX_TAG_VALUE || (event.reason.is_empty() && event.by.is_empty()) {
            return (event, json);
        }
        let longer = if event.reason.len() >= event.by.len() {
            &mut event.reason
        } else {
            &mut event.by
        };
        *longer = longer.chars().take(longer.chars().count() / 2).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_shortened_to_fit_a_tag() {
        let event = AliasEvent::now("champion", "2".into(), None, "x", &"é\"".repeat(5000));
        let (stored, json) = fit_tag_value(event);
        assert!(json.len() <= MAX_TAG_VALUE, "{}", json.len());
        assert!(stored.reason.starts_with("é\"é\""));
        assert_eq!(serde_json::from_str::<AliasEvent>(&json).unwrap(), stored);
        let short = AliasEvent::now("champion", "2".into(), None, "x", "fine");
        assert_eq!(fit_tag_value(short.clone()).0, short);
    }
}
