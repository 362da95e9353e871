//! `doodle-registry`: look at and change the local model registry named in config.toml.
//!
//! ```text
//! doodle-registry list                         every version, marking the deployed one
//! doodle-registry register <checkpoint dir>    copy a checkpoint in as the next version
//!                 [--deploy] [--tag key=value]...
//! doodle-registry deploy <version>             point the deployed alias at a version
//! doodle-registry deployed                     print the deployed version (exit 1 if none)
//! ```
//! With `registry.kind = "mlflow"` the same commands act on the MLflow tracking server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use doodle_core::Settings;
use doodle_core::config::RegistryKind;
use doodle_registry::{LocalRegistry, MlflowClient, MlflowRegistry, RunRecord};

#[derive(Debug, Parser)]
#[command(version, about = "The local model registry (config.toml [registry])")]
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
    Deploy { version: u64 },
    /// Print the deployed version; exit status 1 when none is deployed.
    Deployed,
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
    if settings.registry.kind == RegistryKind::Mlflow {
        return run_mlflow(cli, &settings);
    }
    let alias = &settings.registry.alias;
    let registry = LocalRegistry::new(&settings.registry.local_dir, &settings.registry.model_name)?;
    match cli.command {
        Command::List => {
            let deployed = registry.alias(alias)?.map(|v| v.version);
            for v in registry.versions()? {
                let mark = if Some(v.version) == deployed {
                    format!("  <- {alias}")
                } else {
                    String::new()
                };
                println!("{}\t{}\t{}{mark}", v.version, v.created_at, v.dir.display());
            }
        }
        Command::Register {
            checkpoint,
            deploy,
            tags,
        } => {
            let tags: BTreeMap<String, String> = tags.into_iter().collect();
            let v = registry.register(&checkpoint, tags)?;
            if deploy {
                registry.set_alias(alias, v.version)?;
                println!(
                    "registered version {} and deployed it as {alias:?}",
                    v.version
                );
            } else {
                println!("registered version {}", v.version);
            }
        }
        Command::Deploy { version } => {
            registry.set_alias(alias, version)?;
            println!("deployed version {version} as {alias:?}");
        }
        Command::Deployed => match registry.alias(alias)? {
            Some(v) => println!("{}", v.version),
            None => return Ok(ExitCode::from(1)),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The same commands against an MLflow tracking server (`registry.kind = "mlflow"`).
fn run_mlflow(cli: Cli, settings: &Settings) -> anyhow::Result<ExitCode> {
    let r = &settings.registry;
    let registry = MlflowRegistry {
        client: MlflowClient::new(&r.mlflow_tracking_uri)?,
        model_name: r.model_name.clone(),
        experiment: "doodle".into(),
        cache_dir: r.local_dir.join(".mlflow-cache"),
    };
    let alias = r.alias.as_str();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::List => {
                // Search results do not carry aliases: ask for the alias itself.
                let deployed = registry
                    .client
                    .version_by_alias(&r.model_name, alias)
                    .await?
                    .map(|v| v.version);
                for v in registry.client.search_model_versions(&r.model_name).await? {
                    let mark = if deployed.as_deref() == Some(v.version.as_str()) {
                        format!("  <- {alias}")
                    } else {
                        String::new()
                    };
                    println!("{}\t{}\t{}{mark}", v.version, v.run_id, v.source);
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
                let v = registry
                    .register(&checkpoint, &record, deploy.then_some(alias))
                    .await?;
                println!(
                    "registered version {}{}",
                    v.version,
                    if deploy {
                        format!(" and deployed it as {alias:?}")
                    } else {
                        String::new()
                    }
                );
            }
            Command::Deploy { version } => {
                registry
                    .client
                    .set_alias(&r.model_name, alias, &version.to_string())
                    .await?;
                println!("deployed version {version} as {alias:?}");
            }
            Command::Deployed => match registry
                .client
                .version_by_alias(&r.model_name, alias)
                .await?
            {
                Some(v) => println!("{}", v.version),
                None => return Ok(ExitCode::from(1)),
            },
        }
        Ok(ExitCode::SUCCESS)
    })
}
