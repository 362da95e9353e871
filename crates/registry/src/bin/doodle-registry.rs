//! `doodle-registry`: look at and change the model registry named in config.toml.
//!
//! ```text
//! doodle-registry list                         every version, marking the deployed one
//! doodle-registry register <checkpoint dir>    copy a checkpoint in as the next version
//!                 [--deploy] [--tag key=value]...
//! doodle-registry deploy <version>             point the deployed alias at a version
//!                 [--reason TEXT]
//! doodle-registry deployed                     print the deployed version (exit 1 if none)
//! doodle-registry history                      every move of the alias, oldest first
//! doodle-registry rollback [--reason TEXT]     move the alias back to the previous champion
//! ```
//! With `registry.kind = "mlflow"` the same commands act on the MLflow tracking server. Every
//! move of the alias (deploy, register --deploy, rollback) is recorded in its history.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use doodle_core::Settings;
use doodle_registry::{AliasEvent, LocalRegistry, MlflowRegistry, Registry, RunRecord};

#[derive(Debug, Parser)]
#[command(version, about = "The model registry (config.toml [registry])")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every version, marking the deployed one.
    List,
    /// Copy a checkpoint folder in as the next version.
    Register {
        checkpoint: PathBuf,
        /// Also point the deployed alias at the new version.
        #[arg(long)]
        deploy: bool,
        /// Tags to record, as key=value.
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Point the deployed alias at a version.
    Deploy {
        version: u64,
        /// Why, for the alias history.
        #[arg(long, default_value = "deployed by hand")]
        reason: String,
    },
    /// Print the deployed version; exit status 1 when none is deployed.
    Deployed,
    /// Print every move of the deployed alias, oldest first:
    /// time, version, previous version, by, reason (tab-separated).
    History,
    /// Move the deployed alias back to the previous champion.
    Rollback {
        /// Why, added to the recorded reason.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("doodle-registry: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load()?;
    let registry = Registry::from_settings(&settings)?;
    let alias = settings.registry.alias.as_str();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(command(&registry, alias, cli.command))
}

async fn command(registry: &Registry, alias: &str, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List => {
            let deployed = registry.alias_version(alias).await?;
            let mark = |version: &str| {
                if deployed.as_deref() == Some(version) {
                    format!("  <- {alias}")
                } else {
                    String::new()
                }
            };
            match registry {
                Registry::Local(r) => list_local(r, mark)?,
                Registry::Mlflow(r) => list_mlflow(r, mark).await?,
            }
        }
        Command::Register {
            checkpoint,
            deploy,
            tags,
        } => {
            let record = RunRecord {
                run_name: format!("register {}", checkpoint.display()),
                tags: tags.into_iter().collect(),
                ..RunRecord::default()
            };
            let version = registry.register(&checkpoint, &record).await?;
            if deploy {
                let by = "doodle-registry register";
                let reason = "registered with --deploy";
                registry.move_alias(alias, &version, by, reason).await?;
                println!("registered version {version} and deployed it as {alias:?}");
            } else {
                println!("registered version {version}");
            }
        }
        Command::Deploy { version, reason } => {
            let version = version.to_string();
            let by = "doodle-registry deploy";
            registry.move_alias(alias, &version, by, &reason).await?;
            println!("deployed version {version} as {alias:?}");
        }
        Command::Deployed => match registry.alias_version(alias).await? {
            Some(version) => println!("{version}"),
            None => return Ok(ExitCode::from(1)),
        },
        Command::History => {
            for event in registry.alias_history(alias).await? {
                println!("{}", history_line(&event));
            }
        }
        Command::Rollback { reason } => {
            let by = "doodle-registry rollback";
            let event = registry.rollback_with_reason(alias, by, &reason).await?;
            let from = event.previous.as_deref().unwrap_or("-");
            println!("{alias}: {from} -> {}", event.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `time  version  previous  by  reason`, tab-separated ("-" for no previous version).
fn history_line(e: &AliasEvent) -> String {
    let previous = e.previous.as_deref().unwrap_or("-");
    format!(
        "{}\t{}\t{previous}\t{}\t{}",
        e.at, e.version, e.by, e.reason
    )
}

fn list_local(registry: &LocalRegistry, mark: impl Fn(&str) -> String) -> anyhow::Result<()> {
    for v in registry.versions()? {
        let mark = mark(&v.version.to_string());
        println!("{}\t{}\t{}{mark}", v.version, v.created_at, v.dir.display());
    }
    Ok(())
}

async fn list_mlflow(
    registry: &MlflowRegistry,
    mark: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    // Search results do not carry aliases: the caller asked for the alias itself.
    for v in registry
        .client
        .search_model_versions(&registry.model_name)
        .await?
    {
        let mark = mark(&v.version);
        println!("{}\t{}\t{}{mark}", v.version, v.run_id, v.source);
    }
    Ok(())
}
