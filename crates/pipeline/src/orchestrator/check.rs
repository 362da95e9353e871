//! `--check`: can a run start? The run database answers and every stage's program is found.
//! A container's HEALTHCHECK runs it, so it writes no log file and changes nothing.

use std::time::Duration;

use doodle_core::Settings;
use doodle_runs::RunStore;

use super::command;

/// How long `--check` waits for a database connection.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// One line per thing checked, or the first thing that would stop a run.
pub async fn check(settings: &Settings) -> Result<Vec<String>, String> {
    let store = RunStore::connect_lazy(&settings.database.url, DB_TIMEOUT)
        .map_err(|err| format!("database: {err}"))?;
    store
        .ping()
        .await
        .map_err(|err| format!("database: {err}"))?;
    let mut lines = vec!["database answers".to_string()];
    let exe_dir = command::exe_dir();
    let path_var = std::env::var_os("PATH");
    for (n, argv) in settings.pipeline.stage_commands.iter().enumerate() {
        let program = command::resolve(&argv[0], exe_dir.as_deref(), path_var.as_deref())
            .map_err(|message| format!("stage {}: {message}", n + 1))?;
        lines.push(format!("stage {}: {}", n + 1, program.display()));
    }
    Ok(lines)
}
