//! For tests (feature `test-support`): a fresh, empty PostgreSQL database per test on the local
//! server, and an SQLite URL in a temporary directory.
//!
//! The server is `DOODLE_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]). When it cannot
//! be reached, [`fresh_postgres`] panics naming both: a test never skips silently.

use std::path::Path;

use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::{RunStore, RunsError};

/// The environment variable naming the test PostgreSQL server.
pub const POSTGRES_URL_VAR: &str = "DOODLE_TEST_POSTGRES_URL";

/// The test server when [`POSTGRES_URL_VAR`] is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database created for one test, dropped (connections and all) when this is dropped.
#[derive(Debug)]
pub struct FreshDatabase {
    /// The URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
    admin_url: String,
}

impl FreshDatabase {
    /// A [`RunStore`] on this database, migrated.
    pub async fn store(&self) -> Result<RunStore, RunsError> {
        let store = RunStore::connect(&self.url).await?;
        store.migrate().await?;
        Ok(store)
    }
}

/// A new, uniquely named, empty database on the test server. Panics with the URL and
/// [`POSTGRES_URL_VAR`] when the server cannot be reached.
pub async fn fresh_postgres() -> FreshDatabase {
    let admin_url =
        std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let name = format!("doodle_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "the test PostgreSQL server at {admin_url} cannot be reached ({e}); start one or \
             point {POSTGRES_URL_VAR} at one"
        )
    });
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap_or_else(|e| panic!("creating test database {name} on {admin_url}: {e}"));
    admin.close().await.ok();
    FreshDatabase {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

impl Drop for FreshDatabase {
    /// Drops the database from a thread with its own runtime (`Drop` cannot await, and may run
    /// inside a runtime). Failing to drop it is reported, never a panic.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(drop_database(&admin_url, &name))
                .map_err(|e| e.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    admin.close().await
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_at = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_at..].find('/') {
        Some(slash) => &base[..authority_at + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The URL of an SQLite database file `runs.db` in `dir`, created on first connect.
pub fn sqlite_in(dir: &Path) -> String {
    format!("sqlite://{}/runs.db?mode=rwc", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_the_path_and_keeps_the_query() {
        let cases = [
            ("postgres://u@h:5432/test", "postgres://u@h:5432/x"),
            ("postgres://u@h:5432", "postgres://u@h:5432/x"),
            (
                "postgres://u@h/test?sslmode=disable",
                "postgres://u@h/x?sslmode=disable",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x"), want);
        }
    }

    #[test]
    fn sqlite_in_names_a_file_in_the_folder() {
        let url = sqlite_in(Path::new("/tmp/abc"));
        assert_eq!(url, "sqlite:///tmp/abc/runs.db?mode=rwc");
    }
}
