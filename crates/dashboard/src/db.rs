//! The run database as the dashboard uses it: a lazy pool, migrated on first use.
//!
//! Nothing is opened at start-up, so the dashboard starts (and serves its page, `/health`,
//! `/metrics`) while the database is down; each query then fails fast with
//! [`RunsError::Unavailable`] (503) until the database is back, and the pool reconnects by
//! itself. The migrations (the pipeline's own, idempotent) run on the first query that reaches
//! the database, and again on later queries until they have succeeded once, so a dashboard
//! started before the orchestrator still finds the table.

use std::time::Duration;

use doodle_runs::{RunStore, RunsError};
use tokio::sync::OnceCell;

#[derive(Debug)]
pub struct Runs {
    store: RunStore,
    migrated: OnceCell<()>,
}

impl Runs {
    pub fn new(url: &str, acquire_timeout: Duration) -> Result<Self, RunsError> {
        Ok(Self {
            store: RunStore::connect_lazy(url, acquire_timeout)?,
            migrated: OnceCell::new(),
        })
    }

    /// The store, once the migrations have run (concurrent first callers wait for one run).
    pub async fn store(&self) -> Result<&RunStore, RunsError> {
        self.migrated
            .get_or_try_init(|| self.store.migrate())
            .await?;
        Ok(&self.store)
    }
}
