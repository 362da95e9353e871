//! Stage 6, register: judge the candidate against the deployed model, register it, and move
//! the alias only when the [`crate::gate`] promotes it.
//!
//! 1. The candidate ([`crate::candidate::resolve`]) and the deployed model (the alias).
//! 2. The fixed evaluation set ([`crate::evalset`]) under the rule the candidate recorded
//!    (stage 5 kept exactly those drawings out of its training); a candidate that recorded none
//!    (one named by hand) is judged under the deployed model's rule. Both models are evaluated
//!    on the same drawings, each on the categories it knows.
//! 3. The gate's report: both models' top-1/top-3 overall and per category, the evaluation
//!    set's size and fingerprint, each rule with its numbers and verdict. It is written into the
//!    candidate as `gate_report.json` (so it is stored with the version), logged, and printed
//!    as the stage's `gate_report` (recorded on the run). `--dry-run` stops here.
//! 4. `Registry::register` with tags (data commit and hash, pipeline run, gate decision and
//!    reason, training run); when promoted, `move_alias(alias, version, "pipeline run N",
//!    reason)`, which the alias history keeps. A refused candidate is registered all the same
//!    and the stage succeeds with `promoted: false`: a refusal is an answer, not an error.
//! 5. The candidate folder is removed (the registry holds its copy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use doodle_core::Settings;
use doodle_model::{Classifier, Dataset, Evaluation};
use doodle_pipeline::data::DataDirs;
use doodle_pipeline::protocol::StageOutput;
use doodle_registry::{Registry, RunRecord};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use crate::candidate;
use crate::data_version::DataVersion;
use crate::evalset::{self, EvalRule, Sources, SplitSummary};
use crate::gate::{self, ClassRow, Rule, Score, Thresholds, Verdict};

/// `stage6-register`'s flags.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "stage6-register",
    about = "Stage 6: judge the candidate against the deployed model, register it, promote it if the gate says so"
)]
pub struct Args {
    /// Print the gate's report; register nothing, move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The candidate folder to judge (default: this run's, else the newest).
    #[arg(long)]
    pub candidate: Option<PathBuf>,
}

/// The gate's report, as stored with the version and on the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// `"promote"` or `"refuse"`.
    pub decision: String,
    pub reason: String,
    pub dry_run: bool,
    pub evaluation_set: EvaluationSet,
    pub champion: ModelSide,
    pub candidate: ModelSide,
    pub rules: Vec<Rule>,
    pub per_class: Vec<ClassRow>,
    pub thresholds: Thresholds,
}

/// The drawings both models were judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSet {
    pub drawings: usize,
    pub base: usize,
    pub user: usize,
    pub fingerprint: String,
    pub rule: EvalRule,
}

/// One model in the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSide {
    /// The registry version (champion) or the folder (candidate).
    pub id: String,
    pub categories: Vec<String>,
    /// On the categories both models know.
    pub known: Score,
    /// On the categories only the candidate knows (candidate only).
    pub new: Option<Score>,
    /// Over every evaluation drawing of the categories it knows.
    pub overall: Score,
}

/// Stage 6's body (see the module docs).
pub fn run(settings: &Settings, args: &Args) -> anyhow::Result<StageOutput> {
    crate::set_threads(settings);
    let rt = crate::runtime()?;
    let registry = crate::registry(settings)?;
    let run = crate::pipeline_run();
    let dir = candidate::resolve(settings, args.candidate.as_deref(), run)?;
    let candidate = Classifier::load(&dir)
        .with_context(|| format!("loading the candidate {}", dir.display()))?;
    let (deployed, champion) = crate::deployed_of(&rt, &registry, &settings.registry.alias)?;
    let mut report = judge(settings, &dir, &candidate, &deployed.version, &champion)?;
    report.dry_run = args.dry_run;
    log_report(&report);
    let gate_report = serde_json::to_value(&report).expect("a report serialises");
    if args.dry_run {
        return Ok(StageOutput {
            gate_report: Some(gate_report),
            candidate: Some(dir.display().to_string()),
            summary: Some(format!(
                "dry run, nothing registered; the gate's verdict: {}",
                report.reason
            )),
            ..StageOutput::default()
        });
    }
    let json = serde_json::to_vec_pretty(&report).expect("a report serialises");
    doodle_pipeline::fsx::write_atomic(&dir.join(candidate::GATE_REPORT_FILE), &json)
        .context("writing the gate report into the candidate")?;
    let record = run_record(&dir, &candidate, &report);
    // A fresh handle: the evaluation kept the runtime unpolled long enough for a pooled MLflow
    // connection to pass the server's keep-alive.
    let registry = crate::registry(settings)?;
    let registered = register(&rt, &registry, &dir, &record)?;
    let promote = report.decision == "promote";
    if promote {
        promote_version(
            &rt,
            &registry,
            settings,
            &registered.version,
            &report.reason,
        )?;
    } else {
        tracing::warn!(
            version = registered.version,
            "registered without moving `{}`: {}",
            settings.registry.alias,
            report.reason
        );
    }
    remove_candidate(settings, &dir);
    Ok(StageOutput {
        model_version: Some(registered.version.clone()),
        promoted: Some(promote),
        gate_report: Some(gate_report),
        candidate: Some(dir.display().to_string()),
        summary: Some(registered.summary(promote, &report.reason)),
        ..StageOutput::default()
    })
}

/// Evaluate both models on the fixed evaluation set and apply the gate.
pub fn judge(
    settings: &Settings,
    dir: &Path,
    candidate: &Classifier,
    champion_version: &str,
    champion: &Classifier,
) -> anyhow::Result<GateReport> {
    let rule = match EvalRule::recorded(candidate.metadata())? {
        Some(rule) => rule,
        None => {
            tracing::warn!(
                "the candidate records no evaluation rule (not made by stage 5): judging it on the \
                 deployed model's; it may have trained on some of those drawings"
            );
            EvalRule::for_champion(champion.metadata(), settings.pipeline.eval_user_share)?
        }
    };
    let (eval, summary) = evaluation_set(settings, &rule, candidate, champion)?;
    let champion_eval = evaluate_known(champion, &eval).context("evaluating the deployed model")?;
    let candidate_eval = evaluate_known(candidate, &eval).context("evaluating the candidate")?;
    let thresholds = Thresholds::from_settings(&settings.pipeline);
    let verdict = gate::judge(&champion_eval, &candidate_eval, thresholds);
    Ok(report(
        verdict,
        (champion_version, champion, &champion_eval),
        (dir, candidate, &candidate_eval),
        summary,
        rule,
    ))
}

/// The evaluation drawings of every category either model knows (under the data lock).
fn evaluation_set(
    settings: &Settings,
    rule: &EvalRule,
    candidate: &Classifier,
    champion: &Classifier,
) -> anyhow::Result<(Dataset, SplitSummary)> {
    let mut categories = candidate.categories().to_vec();
    for c in champion.categories() {
        if !categories.contains(c) {
            categories.push(c.clone());
        }
    }
    let dirs = DataDirs::new(settings);
    let _lock = dirs.lock().context("taking the data lock")?;
    let split = evalset::split(&Sources::new(settings), &categories, rule)?;
    tracing::info!(
        drawings = split.summary.eval_drawings,
        base = split.summary.eval_base,
        user = split.summary.eval_user,
        fingerprint = split.summary.eval_fingerprint,
        "the fixed evaluation set"
    );
    Ok((split.eval, split.summary))
}

/// `model` on the evaluation drawings of the categories it knows.
fn evaluate_known(model: &Classifier, eval: &Dataset) -> anyhow::Result<Evaluation> {
    let known: Vec<String> = eval
        .categories
        .iter()
        .filter(|c| model.categories().contains(c))
        .cloned()
        .collect();
    let mut subset = Dataset {
        categories: known.clone(),
        ..Dataset::default()
    };
    for i in 0..eval.len() {
        let category = &eval.categories[eval.labels[i] as usize];
        if let Some(label) = known.iter().position(|c| c == category) {
            subset.push_rows(label as i64, eval.image(i));
        }
    }
    Ok(doodle_model::evaluate::evaluate(model, &subset, 256)?)
}

fn report(
    verdict: Verdict,
    (version, champion, champion_eval): (&str, &Classifier, &Evaluation),
    (dir, candidate, candidate_eval): (&Path, &Classifier, &Evaluation),
    summary: SplitSummary,
    rule: EvalRule,
) -> GateReport {
    let overall = |e: &Evaluation| Score {
        drawings: e.count,
        top1: e.top1,
        top3: e.top3,
    };
    GateReport {
        decision: if verdict.promote { "promote" } else { "refuse" }.into(),
        reason: verdict.reason,
        dry_run: false,
        evaluation_set: EvaluationSet {
            drawings: summary.eval_drawings,
            base: summary.eval_base,
            user: summary.eval_user,
            fingerprint: summary.eval_fingerprint,
            rule,
        },
        champion: ModelSide {
            id: format!("version {version}"),
            categories: champion.categories().to_vec(),
            known: verdict.champion_known,
            new: None,
            overall: overall(champion_eval),
        },
        candidate: ModelSide {
            id: dir.display().to_string(),
            categories: candidate.categories().to_vec(),
            known: verdict.candidate_known,
            new: verdict.candidate_new,
            overall: overall(candidate_eval),
        },
        rules: verdict.rules,
        per_class: verdict.per_class,
        thresholds: verdict.thresholds,
    }
}

/// The decision, each rule and each category, in `stage6.log`.
fn log_report(r: &GateReport) {
    tracing::info!(
        decision = r.decision,
        evaluation_drawings = r.evaluation_set.drawings,
        "gate: {}",
        r.reason
    );
    for rule in &r.rules {
        let verdict = if rule.passed { "pass" } else { "FAIL" };
        tracing::info!(rule = rule.name, verdict, "{}", rule.detail);
    }
    let pct = |x: Option<f64>| x.map_or("   -  ".into(), |x| format!("{:5.1}%", x * 100.0));
    for row in &r.per_class {
        tracing::info!(
            "  {:<16} {:>5} drawings  deployed {}  candidate {}{}",
            row.category,
            row.drawings,
            pct(row.champion_top1),
            pct(row.candidate_top1),
            if row.new { "  (new)" } else { "" }
        );
    }
}

/// Parameters, metrics and tags the version is registered with.
fn run_record(dir: &Path, candidate: &Classifier, report: &GateReport) -> RunRecord {
    let meta = candidate.metadata();
    let mut tags = BTreeMap::new();
    if let Some(v) = DataVersion::recorded(meta) {
        tags.insert("data_commit".into(), v.commit);
        tags.insert("data_hash".into(), v.dvc_hash);
    }
    if let Some(run) = crate::pipeline_run() {
        tags.insert("pipeline_run".into(), run.to_string());
    }
    let passed = if report.decision == "promote" {
        "passed"
    } else {
        "refused"
    };
    tags.insert("gate".into(), passed.into());
    tags.insert("gate_reason".into(), truncate(&report.reason, 4000));
    tags.insert("candidate".into(), folder_name(dir));
    if let Some(run) = meta.training.get("mlflow_run_id").and_then(|v| v.as_str()) {
        tags.insert("training_run_id".into(), run.into());
    }
    let params = [
        ("architecture", meta.architecture.clone()),
        ("categories", meta.categories.len().to_string()),
        (
            "evaluation_drawings",
            report.evaluation_set.drawings.to_string(),
        ),
        (
            "evaluation_fingerprint",
            report.evaluation_set.fingerprint.clone(),
        ),
        ("champion", report.champion.id.clone()),
    ];
    let mut metrics = BTreeMap::from([
        ("candidate_known_top1".into(), report.candidate.known.top1),
        ("candidate_known_top3".into(), report.candidate.known.top3),
        ("champion_known_top1".into(), report.champion.known.top1),
        ("champion_known_top3".into(), report.champion.known.top3),
    ]);
    if let Some(new) = &report.candidate.new {
        metrics.insert("candidate_new_top1".into(), new.top1);
    }
    RunRecord {
        run_name: match crate::pipeline_run() {
            Some(run) => format!("pipeline run {run}"),
            None => folder_name(dir),
        },
        params: params.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        metrics,
        tags,
    }
}

/// A registered version, and the MLflow run that holds it (MLflow only).
#[derive(Debug)]
struct Registered {
    version: String,
    mlflow_run: Option<String>,
}

impl Registered {
    fn summary(&self, promoted: bool, reason: &str) -> String {
        let run = self
            .mlflow_run
            .as_ref()
            .map(|r| format!(" (MLflow run {r})"))
            .unwrap_or_default();
        let what = if promoted { "promoted" } else { "not promoted" };
        format!("version {}{run} registered, {what}: {reason}", self.version)
    }
}

fn register(
    rt: &Runtime,
    registry: &Registry,
    dir: &Path,
    record: &RunRecord,
) -> anyhow::Result<Registered> {
    rt.block_on(async {
        let version = registry
            .register(dir, record)
            .await
            .with_context(|| format!("registering {}", dir.display()))?;
        let mlflow_run = match registry {
            Registry::Mlflow(r) => Some(
                r.client
                    .model_version(&r.model_name, &version)
                    .await
                    .context("reading the registered version back")?
                    .run_id,
            ),
            Registry::Local(_) => None,
        };
        tracing::info!(version, mlflow_run, "candidate registered");
        Ok(Registered {
            version,
            mlflow_run,
        })
    })
}

fn promote_version(
    rt: &Runtime,
    registry: &Registry,
    settings: &Settings,
    version: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let alias = &settings.registry.alias;
    let by = crate::run_label();
    let event = rt
        .block_on(registry.move_alias(alias, version, &by, &truncate(reason, 4000)))
        .with_context(|| format!("moving `{alias}` to version {version}"))?;
    tracing::info!(
        alias,
        version,
        previous = event.previous,
        by,
        "promoted: the model server picks it up at its next poll"
    );
    Ok(())
}

/// Remove a candidate stage 5 made once it is registered (never a folder named by hand
/// outside `<state_dir>/candidates`).
fn remove_candidate(settings: &Settings, dir: &Path) {
    let root = candidate::root(settings);
    let inside = dir.parent().is_some_and(|p| same_dir(p, &root));
    if !inside {
        return;
    }
    if let Err(err) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), "could not remove the registered candidate: {err}");
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
