//! Stage 4, version: `dvc add <data folder>` and a git commit in the data repository, so every
//! run's data is a version that can be checked out again (and `dvc push`ed to a local remote).
//!
//! The repository is created on first use (`git init` + `dvc init`). "Nothing to commit" is
//! success. The commit and DVC's hash of the folder are the stage's output, recorded on the run.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use doodle_core::Settings;
use doodle_core::config::PipelineSettings;

use crate::data::DataDirs;
use crate::protocol::StageOutput;

pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    let dirs = DataDirs::new(settings);
    // Hold the data lock: a stopped stage 2 or 3 is finished or undone before DVC hashes.
    let _lock = dirs.lock().context("taking the data lock")?;
    let tools = Tools::new(&settings.pipeline, &dirs.repo);
    tools.init_repository()?;
    let folder = &settings.pipeline.data_folder;
    tools.dvc(["add", "-q", folder.as_str()])?;
    tools.git(["add", &format!("{folder}.dvc"), ".gitignore"])?;
    let committed = if tools.has_staged_changes()? {
        tools.git([
            "commit",
            "-q",
            "-m",
            &format!("Update tracked data in {folder}"),
        ])?;
        true
    } else {
        tracing::info!("the data has not changed since the last version: nothing to commit");
        false
    };
    if !settings.pipeline.dvc_remote.is_empty() {
        tools.push(&settings.pipeline.dvc_remote)?;
    }
    let commit = tools.git(["rev-parse", "HEAD"])?;
    let hash = dvc_hash(&dirs.repo.join(format!("{folder}.dvc")))?;
    tracing::info!(commit, hash, committed, "data versioned");
    Ok(StageOutput {
        data_commit: Some(commit.clone()),
        data_hash: Some(hash),
        summary: Some(if committed {
            format!("data committed as {}", &commit[..commit.len().min(12)])
        } else {
            "data unchanged".into()
        }),
        ..StageOutput::default()
    })
}

/// git and dvc, run in the data repository.
#[derive(Debug)]
struct Tools<'a> {
    git: &'a str,
    dvc: &'a str,
    repo: &'a Path,
}

impl<'a> Tools<'a> {
    fn new(p: &'a PipelineSettings, repo: &'a Path) -> Self {
        Self {
            git: &p.git_command,
            dvc: &p.dvc_command,
            repo,
        }
    }

    /// `git init` + `dvc init` where they are missing, with a first commit.
    fn init_repository(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.repo)
            .with_context(|| format!("creating {}", self.repo.display()))?;
        if !self.repo.join(".git").exists() {
            tracing::info!(repo = %self.repo.display(), "creating the data repository (git init)");
            self.git(["init", "-q"])?;
        }
        // Commits need an author; keep the user's own when git has one.
        if self.git(["config", "user.email"]).is_err() {
            self.git(["config", "user.email", "pipeline@doodle.invalid"])?;
            self.git(["config", "user.name", "doodle pipeline"])?;
        }
        if !self.repo.join(".dvc").exists() {
            tracing::info!("initializing DVC in the data repository (dvc init)");
            self.dvc(["init", "-q"])?;
            self.dvc(["config", "core.analytics", "false"])?;
            std::fs::write(
                self.repo.join(".dvcignore"),
                "# the pipeline's temp files\n.*.tmp\n",
            )?;
            self.git(["add", ".dvc", ".dvcignore"])?;
            self.git(["commit", "-q", "-m", "Initialize the data repository (DVC)"])?;
        }
        Ok(())
    }

    fn has_staged_changes(&self) -> anyhow::Result<bool> {
        let status = self
            .command(self.git, ["diff", "--cached", "--quiet"])
            .status()
            .map_err(|e| self.spawn_error(self.git, e))?;
        match status.code() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => bail!("`git diff --cached --quiet` failed ({status})"),
        }
    }

    fn push(&self, remote: &str) -> anyhow::Result<()> {
        let remote = std::path::absolute(remote)?;
        std::fs::create_dir_all(&remote)?;
        let remote = remote.to_string_lossy();
        self.dvc(["remote", "add", "-q", "-f", "-d", "local", remote.as_ref()])?;
        self.dvc(["push", "-q"])?;
        tracing::info!(
            remote = remote.as_ref(),
            "pushed the data to the DVC remote"
        );
        Ok(())
    }

    fn git<const N: usize>(&self, args: [&str; N]) -> anyhow::Result<String> {
        self.run(self.git, args)
    }

    fn dvc<const N: usize>(&self, args: [&str; N]) -> anyhow::Result<String> {
        self.run(self.dvc, args)
    }

    fn command<const N: usize>(&self, program: &str, args: [&str; N]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(self.repo)
            .env("DVC_NO_ANALYTICS", "1")
            .env("GIT_TERMINAL_PROMPT", "0");
        command
    }

    /// Run to completion; stdout trimmed, or an error with the command and its stderr.
    fn run<const N: usize>(&self, program: &str, args: [&str; N]) -> anyhow::Result<String> {
        let out = self
            .command(program, args)
            .output()
            .map_err(|e| self.spawn_error(program, e))?;
        if !out.status.success() {
            bail!(
                "`{program} {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn spawn_error(&self, program: &str, e: std::io::Error) -> anyhow::Error {
        if e.kind() != std::io::ErrorKind::NotFound {
            return anyhow::Error::new(e).context(format!("starting `{program}`"));
        }
        let how = if Path::new(program).file_name() == Some(OsStr::new("git")) {
            "install git (apt-get install git) or set pipeline.git_command"
        } else {
            "install it with scripts/setup-mlflow.sh (pip install dvc==3.67.1 into .venv) and put \
             .venv/bin on PATH, or set pipeline.dvc_command"
        };
        anyhow::anyhow!("`{program}` was not found: {how}")
    }
}

/// The `md5:` of the first output in a `.dvc` file (DVC's hash of the folder); stage 5 reads
/// the data version with it too.
pub fn dvc_hash(dvc_file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dvc_file)
        .with_context(|| format!("reading {}", dvc_file.display()))?;
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("md5:"))
        .map(|h| h.trim().to_string())
        .next()
        .with_context(|| format!("{} has no md5", dvc_file.display()))
}
