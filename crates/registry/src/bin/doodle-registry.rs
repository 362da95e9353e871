//! `doodle-registry`: look at and change the local model registry named in config.toml.
//!
//! ```text
//! doodle-registry list                         every version, marking the deployed one
//! doodle-registry register <checkpoint dir>    copy a checkpoint in as the next version
//!                 [--deploy] [--tag key=value]...
//! doodle-registry deploy <version>             point the deployed alias at a version
//! doodle-registry deployed                     print the deployed version (exit 1 if none)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use doodle_core::Settings;
use doodle_registry::LocalRegistry;

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
