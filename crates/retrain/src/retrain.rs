//! Stage 5, retrain: fine-tune the deployed model on the base data plus the users' drawings
//! into a candidate for stage 6.
//!
//! 1. The deployed model: the version the registry's alias (`registry.alias`) names.
//! 2. The label order ([`crate::categories`]); a category the users drew for the first time
//!    joins only once the evaluation set holds `pipeline.gate_min_new_class_drawings` of its
//!    drawings (so the gate can judge it); until then it waits, logged, and known categories
//!    still improve.
//! 3. The drawings, read under the data lock: base + `old/` + `new/`, split into the fixed
//!    evaluation set ([`crate::evalset`]), never trained on, and the training pool; at most
//!    `pipeline.retrain_max_per_class` drawings per category are kept (those with the smallest
//!    SHA-256 of seed + bytes: a seeded sample that ignores file order).
//! 4. Fine-tuning (`doodle_model::fine_tune_dataset`): the final layer resized for the new
//!    label order (learned rows kept), only it trained unless `retrain_unfreeze_all`,
//!    `retrain_epochs` epochs within `retrain_max_minutes`, the champion's recipe (augmentation,
//!    mirroring) with this stage's rate and batch size, the best epoch by validation top-1 on a
//!    seeded, stratified `retrain_val_fraction` of the pool.
//! 5. The candidate folder ([`crate::candidate`]), written under a temp name and renamed when
//!    whole, with `metrics.json` beside the checkpoint; its metadata records the data version
//!    (git commit + DVC hash), the evaluation rule, the deployed version it started from, the
//!    pipeline run and the MLflow training run ([`crate::tracking`]).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use doodle_core::Settings;
use doodle_model::train::{EpochLog, Recipe};
use doodle_model::{
    Classifier, Dataset, DatasetFineTuneOptions, EpochEnd, IMAGE_PIXELS, Metadata, TrainReport,
};
use doodle_pipeline::data::DataDirs;
use doodle_pipeline::protocol::StageOutput;
use doodle_registry::Deployed;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::candidate::{self, Staging};
use crate::categories;
use crate::data_version::{DATA_VERSION_KEY, DataVersion};
use crate::evalset::{self, EvalRule, RULE_KEY, Sources, Split, SplitSummary};
use crate::tracking::Tracker;

/// Stage 5's body (see the module docs).
pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    crate::set_threads(settings);
    let rt = crate::runtime()?;
    let (deployed, champion) = crate::load_deployed(&rt, settings)?;
    let data_version = DataVersion::read(settings)?;
    let (prepared, pool) = training_data(settings, champion.metadata())?;
    let name = candidate::name_for(crate::pipeline_run());
    let staging = Staging::new(&candidate::root(settings), &name)?;
    let plan = Plan {
        settings,
        deployed: &deployed,
        champion: &champion,
        prepared: &prepared,
        data_version: &data_version,
    };
    let tracker = Tracker::start(&rt, settings, &name, &plan.params(&pool))?;
    let trained = plan.train(&pool, &staging, &tracker);
    tracker.finish(trained.is_ok());
    let (report, epochs) = trained?;
    let metrics = plan.metrics(&name, &report, epochs, tracker.run_id());
    let json = serde_json::to_vec_pretty(&metrics).expect("metrics serialise");
    doodle_pipeline::fsx::write_atomic(&staging.dir().join(candidate::METRICS_FILE), &json)
        .context("writing metrics.json")?;
    let dir = staging.commit()?;
    tracing::info!(candidate = %dir.display(), "candidate written");
    Ok(StageOutput {
        candidate: Some(dir.display().to_string()),
        summary: Some(plan.summary(&name, &report)),
        ..StageOutput::default()
    })
}

/// The label order, the evaluation rule and the split of every drawing.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub categories: Vec<String>,
    /// Categories neither `categories_file` nor the deployed model knows.
    pub new_categories: Vec<String>,
    pub rule: EvalRule,
    pub split: Split,
}

/// What stage 5 trains on, for a deployed model with metadata `champion`: the split of every
/// drawing, and the capped training pool (the drawings handed to fine-tuning).
pub fn training_data(
    settings: &Settings,
    champion: &Metadata,
) -> anyhow::Result<(Prepared, Dataset)> {
    let prepared = prepare(settings, champion)?;
    let p = &settings.pipeline;
    let pool = cap_per_class(
        &prepared.split.pool,
        p.retrain_max_per_class,
        p.retrain_seed,
    );
    if pool.len() < prepared.split.pool.len() {
        tracing::info!(
            kept = pool.len(),
            of = prepared.split.pool.len(),
            cap = p.retrain_max_per_class,
            "capped the training drawings per category"
        );
    }
    Ok((prepared, pool))
}

/// Read the drawings under the data lock and split them (see the module docs, steps 2–3).
pub fn prepare(settings: &Settings, champion: &Metadata) -> anyhow::Result<Prepared> {
    let dirs = DataDirs::new(settings);
    let _lock = dirs.lock().context("taking the data lock")?;
    let file = file_categories(settings, champion)?;
    let found = categories::found_in(&[&dirs.old, &dirs.new])?;
    let all = categories::category_list(&file, &champion.categories, &found);
    let rule = EvalRule::for_champion(champion, settings.pipeline.eval_user_share)?;
    let sources = Sources::new(settings);
    let first = evalset::split(&sources, &all, &rule)?;
    let known = |c: &String| file.contains(c) || champion.categories.contains(c);
    let ready = ready_categories(
        &first,
        &known,
        settings.pipeline.gate_min_new_class_drawings,
    );
    let split = if ready.len() == all.len() {
        first
    } else {
        evalset::split(&sources, &ready, &rule)?
    };
    let new_categories = ready.iter().filter(|c| !known(c)).cloned().collect();
    log_split(&split.summary, &ready);
    Ok(Prepared {
        categories: ready,
        new_categories,
        rule,
        split,
    })
}

/// `model.categories_file`, or the deployed model's own list when there is no such file.
fn file_categories(settings: &Settings, champion: &Metadata) -> anyhow::Result<Vec<String>> {
    let path = &settings.model.categories_file;
    if !path.is_file() {
        tracing::warn!(file = %path.display(), "no categories file: starting from the deployed model's categories");
        return Ok(champion.categories.clone());
    }
    Ok(doodle_model::data::read_categories(path)?)
}

/// Known categories, and the new ones with enough evaluation drawings (and two or more to
/// train on); the others wait for more drawings.
fn ready_categories(
    split: &Split,
    known: &dyn Fn(&String) -> bool,
    min_eval: usize,
) -> Vec<String> {
    let eval = split.eval.class_counts();
    let pool = split.pool.class_counts();
    let mut ready = Vec::new();
    for (i, category) in split.eval.categories.iter().enumerate() {
        if known(category) || (eval[i] >= min_eval.max(1) && pool[i] >= 2) {
            ready.push(category.clone());
        } else {
            tracing::info!(
                category,
                evaluation_drawings = eval[i],
                training_drawings = pool[i],
                needed = min_eval,
                "new category waits for more drawings before it is learned"
            );
        }
    }
    ready
}

fn log_split(s: &SplitSummary, categories: &[String]) {
    tracing::info!(
        categories = categories.len(),
        evaluation = s.eval_drawings,
        evaluation_base = s.eval_base,
        evaluation_user = s.eval_user,
        training = s.pool_drawings,
        training_user = s.pool_user,
        duplicates_excluded = s.duplicates_excluded,
        "drawings split into the fixed evaluation set and the training pool"
    );
}

/// At most `max` drawings per category (0 = all): those with the smallest SHA-256 of
/// `seed ‖ bytes`, in their original order.
pub fn cap_per_class(pool: &Dataset, max: usize, seed: u64) -> Dataset {
    let counts = pool.class_counts();
    if max == 0 || counts.iter().all(|&n| n <= max) {
        return pool.clone();
    }
    let mut by_class: Vec<Vec<(u64, usize)>> = vec![Vec::new(); counts.len()];
    for i in 0..pool.len() {
        let digest = Sha256::new()
            .chain_update(seed.to_le_bytes())
            .chain_update(pool.image(i))
            .finalize();
        let key = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        by_class[pool.labels[i] as usize].push((key, i));
    }
    let mut keep: Vec<usize> = Vec::with_capacity(pool.len());
    for mut class in by_class {
        class.sort_unstable();
        keep.extend(class.into_iter().take(max).map(|(_, i)| i));
    }
    keep.sort_unstable();
    pool.subset(&keep)
}

/// One epoch in `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochMetrics {
    #[serde(flatten)]
    pub log: EpochLog,
    pub per_class: Vec<doodle_model::evaluate::ClassResult>,
}

/// Everything one training needs to know.
struct Plan<'a> {
    settings: &'a Settings,
    deployed: &'a Deployed,
    champion: &'a Classifier,
    prepared: &'a Prepared,
    data_version: &'a DataVersion,
}

impl Plan<'_> {
    /// Fine-tune the deployed model on `pool` into the staging folder.
    fn train(
        &self,
        pool: &Dataset,
        staging: &Staging,
        tracker: &Tracker<'_>,
    ) -> anyhow::Result<(TrainReport, Vec<EpochMetrics>)> {
        if pool.len() < 2 {
            bail!(
                "{} training drawings are too few to fine-tune on",
                pool.len()
            );
        }
        let p = &self.settings.pipeline;
        let opts = DatasetFineTuneOptions {
            val_fraction: p.retrain_val_fraction,
            seed: p.retrain_seed,
            recipe: recipe(self.settings, self.champion.metadata()),
            unfreeze_all: p.retrain_unfreeze_all,
            out_dir: staging.dir().to_path_buf(),
            progress: false,
            max_minutes: (p.retrain_max_minutes > 0.0).then_some(p.retrain_max_minutes),
            parent: Some(format!(
                "registry version {} ({})",
                self.deployed.version,
                self.deployed.dir.display()
            )),
            training: self.lineage(tracker.run_id()),
        };
        let mut epochs = Vec::new();
        let mut on_epoch = |end: &EpochEnd<'_>| {
            log_epoch(end);
            tracker.epoch(end);
            epochs.push(EpochMetrics {
                log: end.log.clone(),
                per_class: end.validation.per_class.clone(),
            });
        };
        let report = doodle_model::fine_tune_dataset(self.champion, pool, &opts, &mut on_epoch)
            .context("fine-tuning the deployed model")?;
        Ok((report, epochs))
    }

    /// What the candidate's `training` metadata records beyond the recipe.
    fn lineage(&self, mlflow_run: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
        let fields = json!({
            RULE_KEY: self.prepared.rule,
            DATA_VERSION_KEY: self.data_version,
            "deployed_version": self.deployed.version,
            "pipeline_run": crate::pipeline_run(),
            "mlflow_run_id": mlflow_run,
            "new_categories": self.prepared.new_categories,
            "max_per_class": self.settings.pipeline.retrain_max_per_class,
            "split": self.prepared.split.summary,
        });
        match fields {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("json! of an object is an object"),
        }
    }

    /// The MLflow run's parameters.
    fn params(&self, pool: &Dataset) -> BTreeMap<String, String> {
        let p = &self.settings.pipeline;
        let s = &self.prepared.split.summary;
        let mut params: BTreeMap<String, String> = [
            (
                "architecture",
                self.champion.metadata().architecture.clone(),
            ),
            ("categories", self.prepared.categories.len().to_string()),
            ("new_categories", self.prepared.new_categories.join(",")),
            ("epochs", p.retrain_epochs.to_string()),
            ("max_minutes", p.retrain_max_minutes.to_string()),
            ("batch_size", p.retrain_batch_size.to_string()),
            ("learning_rate", p.retrain_learning_rate.to_string()),
            ("unfreeze_all", p.retrain_unfreeze_all.to_string()),
            ("max_per_class", p.retrain_max_per_class.to_string()),
            ("val_fraction", p.retrain_val_fraction.to_string()),
            ("seed", p.retrain_seed.to_string()),
            ("training_drawings", pool.len().to_string()),
            ("evaluation_drawings", s.eval_drawings.to_string()),
            ("data_commit", self.data_version.commit.clone()),
            ("data_hash", self.data_version.dvc_hash.clone()),
            ("deployed_version", self.deployed.version.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(run) = crate::pipeline_run() {
            params.insert("pipeline_run".into(), run.to_string());
        }
        params
    }

    fn metrics(
        &self,
        name: &str,
        report: &TrainReport,
        epochs: Vec<EpochMetrics>,
        mlflow_run: Option<&str>,
    ) -> serde_json::Value {
        json!({
            "candidate": name,
            "deployed_version": self.deployed.version,
            "mlflow_run_id": mlflow_run,
            DATA_VERSION_KEY: self.data_version,
            "categories": self.prepared.categories,
            "new_categories": self.prepared.new_categories,
            "split": self.prepared.split.summary,
            "train_drawings": report.train_size,
            "validation_drawings": report.val_size,
            "best_epoch": report.best_epoch,
            "best_validation": {
                "top1": report.validation.top1,
                "top3": report.validation.top3,
                "per_class": report.validation.per_class,
            },
            "seconds": report.seconds,
            "epochs": epochs,
        })
    }

    fn summary(&self, name: &str, report: &TrainReport) -> String {
        let new = &self.prepared.new_categories;
        let new = if new.is_empty() {
            String::new()
        } else {
            format!(" (new: {})", new.join(", "))
        };
        format!(
            "candidate {name}: {} categories{new}, {} training drawings, best epoch {} with \
             validation top-1 {:.1}%",
            self.prepared.categories.len(),
            report.train_size,
            report.best_epoch,
            report.validation.top1 * 100.0
        )
    }
}

/// Progress in `stage5.log`: epoch, loss, validation, images/s, time left.
fn log_epoch(end: &EpochEnd<'_>) {
    let log = end.log;
    tracing::info!(
        epoch = log.epoch,
        epochs = end.epochs,
        images_per_second = log.images_per_second.round(),
        seconds_left = end.seconds_left.round(),
        "epoch {}/{}: loss {:.4}, validation top-1 {:.2}% top-3 {:.2}%, {:.0} images/s, about {:.0} s left",
        log.epoch,
        end.epochs,
        log.train_loss,
        log.val_accuracy * 100.0,
        log.val_top3 * 100.0,
        log.images_per_second,
        end.seconds_left
    );
}

/// The deployed model's recipe (augmentation, mirroring, smoothing) with this stage's epochs,
/// rate and batch size; no warm-up, no EMA; `Recipe::fine_tune` when it recorded none.
fn recipe(settings: &Settings, champion: &Metadata) -> Recipe {
    let p = &settings.pipeline;
    let recorded = champion
        .training
        .get("recipe")
        .and_then(|r| serde_json::from_value::<Recipe>(r.clone()).ok());
    Recipe {
        epochs: p.retrain_epochs,
        batch_size: p.retrain_batch_size,
        lr: p.retrain_learning_rate,
        warmup_epochs: 0.0,
        ema_decay: 0.0,
        zero_init_residual: false,
        tta_hflip: champion.tta_hflip,
        ..recorded.unwrap_or_else(Recipe::fine_tune)
    }
}

/// The drawings of `ds` as a set of SHA-256 digests (for tests and checks).
pub fn digests(ds: &Dataset) -> std::collections::HashSet<[u8; 32]> {
    ds.pixels
        .chunks_exact(IMAGE_PIXELS)
        .map(|row| Sha256::digest(row).into())
        .collect()
}
