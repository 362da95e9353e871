//! Training from scratch and fine-tuning, as library functions (the CLI and the pipeline's
//! retrain stage call these).
//!
//! One loop serves both: seeded stratified split, seeded shuffling, augmentation on the batch
//! tensor (random affine: rotation, scale, shift, optional mirror), SGD with Nesterov momentum,
//! linear warm-up then cosine decay, label smoothing, weight decay on conv/linear weights only,
//! an optional exponential moving average (EMA) of the weights, and the best checkpoint kept by
//! validation top-1 (raw or EMA weights, whichever is better).

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::time::Instant;

use doodle_core::config::Architecture;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Reduction, Tensor};

use crate::checkpoint::{Classifier, now_rfc3339, write_atomic, write_checkpoint};
use crate::evaluate::{Evaluation, evaluate_network};
use crate::rng::Rng;
use crate::{Dataset, IMAGE_PIXELS, ModelError, input};

/// Random affine augmentation applied to every training batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Rotation, uniform in ±degrees.
    pub rotate_deg: f64,
    /// Scale, uniform in `[scale_min, scale_max]`.
    pub scale_min: f64,
    pub scale_max: f64,
    /// Shift, uniform in ±pixels on each axis.
    pub shift_px: f64,
    /// Mirror left–right with probability ½.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation at all.
    pub fn none() -> Augment {
        Augment {
            rotate_deg: 0.0,
            scale_min: 1.0,
            scale_max: 1.0,
            shift_px: 0.0,
            hflip: false,
        }
    }
}

impl Default for Augment {
    fn default() -> Augment {
        Augment {
            rotate_deg: 10.0,
            scale_min: 0.9,
            scale_max: 1.1,
            shift_px: 2.0,
            hflip: true,
        }
    }
}

/// Optimiser, schedule and regularisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate (reached after the warm-up).
    pub lr: f64,
    pub momentum: f64,
    /// Applied to convolution and linear weights only (not BatchNorm, not biases).
    pub weight_decay: f64,
    pub label_smoothing: f64,
    /// Linear warm-up length in epochs (0 = none); cosine decay to 0 afterwards.
    pub warmup_epochs: f64,
    pub augment: Augment,
    /// Decay of the exponential moving average of the weights (0 = no EMA).
    pub ema_decay: f64,
    /// Evaluate (and later serve) with mirrored test-time augmentation.
    pub tta_hflip: bool,
    /// Start each residual block's last BatchNorm at zero, so every block begins as the
    /// identity (Goyal et al. 2017); only for a network trained from scratch.
    pub zero_init_residual: bool,
    /// Scale the loss gradient down to this global L2 norm when it is larger (0 = off): a
    /// guard against the loss spikes a peak rate of 0.1 can cause.
    pub max_grad_norm: f64,
}

impl Default for Recipe {
    /// The default model's recipe (see `docs/benchmarks.md`, "Model").
    fn default() -> Recipe {
        Recipe {
            epochs: 16,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            label_smoothing: 0.1,
            warmup_epochs: 1.0,
            augment: Augment::default(),
            ema_decay: 0.999,
            tta_hflip: true,
            zero_init_residual: true,
            max_grad_norm: 5.0,
        }
    }
}

impl Recipe {
    /// Fine-tuning's defaults: a few epochs, lower rate, no warm-up.
    pub fn fine_tune() -> Recipe {
        Recipe {
            epochs: 3,
            lr: 0.05,
            warmup_epochs: 0.0,
            ema_decay: 0.0,
            ..Recipe::default()
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Options(m.to_string()));
        if self.batch_size < 2 {
            return bad("batch size must be at least 2 (BatchNorm needs two drawings)");
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return bad("learning rate must be positive");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("EMA decay must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label smoothing must be in [0, 1)");
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm < 0.0 {
            return bad("gradient norm limit must be 0 (off) or positive");
        }
        if self.augment.scale_min <= 0.0 || self.augment.scale_min > self.augment.scale_max {
            return bad("augmentation scale range must satisfy 0 < min <= max");
        }
        Ok(())
    }
}

/// Train a new model.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub architecture: Architecture,
    /// Directories (`<c>.npy`, `<c>/*.png`) and `.npz` files; see [`Dataset::load`].
    pub data: Vec<PathBuf>,
    /// Label order.
    pub categories: Vec<String>,
    /// Use only the first N drawings of each category.
    pub limit_per_class: Option<usize>,
    pub val_fraction: f64,
    pub seed: u64,
    pub recipe: Recipe,
    /// The best checkpoint, `train_log.csv` and `validation/` reports are written here.
    pub out_dir: PathBuf,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
    /// Time budget: after every epoch the run compares its speed with the time left and, if
    /// needed, lowers the number of epochs (re-laying the cosine over the new total) so that it
    /// ends within about this many minutes. The count used is recorded in the metadata.
    pub max_minutes: Option<f64>,
}

/// Fine-tune an existing checkpoint, possibly with new categories.
#[derive(Debug, Clone)]
pub struct FineTuneOptions {
    pub checkpoint: PathBuf,
    pub data: Vec<PathBuf>,
    /// The new label order; may add categories (old ones keep their learned final-layer rows).
    pub categories: Vec<String>,
    pub limit_per_class: Option<usize>,
    pub val_fraction: f64,
    pub seed: u64,
    pub recipe: Recipe,
    /// Train every layer, not only the final one.
    pub unfreeze_all: bool,
    pub out_dir: PathBuf,
    pub progress: bool,
    /// Time budget, as in [`TrainOptions::max_minutes`].
    pub max_minutes: Option<f64>,
}

/// Fine-tune a classifier already in memory on drawings already in memory (the pipeline's
/// retrain stage, which chooses the drawings itself). `data` is split into train and validation
/// as [`fine_tune`] splits its data; its categories are the new label order.
#[derive(Debug, Clone)]
pub struct DatasetFineTuneOptions {
    pub val_fraction: f64,
    pub seed: u64,
    pub recipe: Recipe,
    /// Train every layer, not only the final one.
    pub unfreeze_all: bool,
    pub out_dir: PathBuf,
    pub progress: bool,
    /// Time budget, as in [`TrainOptions::max_minutes`].
    pub max_minutes: Option<f64>,
    /// Where the starting weights came from (the checkpoint's `parent`).
    pub parent: Option<String>,
    /// Extra fields for the checkpoint's `training` metadata (merged over the ones this
    /// function writes: mode, recipe, seed, validation fraction, drawings, base training).
    pub training: serde_json::Map<String, serde_json::Value>,
}

/// What the epoch callback of [`fine_tune_dataset`] is told after every epoch (once that
/// epoch's checkpoint, if it was the best so far, is on disk).
#[derive(Debug)]
pub struct EpochEnd<'a> {
    pub log: &'a EpochLog,
    /// Validation of the trained weights, per category included.
    pub validation: &'a Evaluation,
    /// Validation of the EMA weights, when the recipe keeps an average.
    pub ema_validation: Option<&'a Evaluation>,
    /// Epochs the run now plans (a time budget may have lowered it).
    pub epochs: usize,
    /// The best epoch so far (its weights are the checkpoint).
    pub best_epoch: usize,
    /// Estimated time to the end of the run, in seconds.
    pub seconds_left: f64,
}

/// One line of `train_log.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub val_top3: f64,
    pub ema_val_accuracy: Option<f64>,
    pub ema_val_top3: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// What a training run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub out_dir: PathBuf,
    pub best_epoch: usize,
    /// `"weights"` or `"ema"`: which set of weights was best.
    pub best_source: String,
    pub validation: Evaluation,
    pub epochs: Vec<EpochLog>,
    pub train_size: usize,
    pub val_size: usize,
    pub seconds: f64,
    /// Peak resident memory of this process (VmHWM), if known.
    pub peak_rss_mib: Option<f64>,
}

/// Steps timed at the start of a run with a time budget before it is planned again.
const PROBE_STEPS: usize = 8;

/// Train a model from scratch; the best checkpoint ends up in `opts.out_dir`.
pub fn train(opts: &TrainOptions) -> Result<TrainReport, ModelError> {
    opts.recipe.validate()?;
    let data = Dataset::load(&opts.data, &opts.categories, opts.limit_per_class)?;
    tch::manual_seed(opts.seed as i64);
    let mut model = Classifier::new_untrained(opts.architecture, &opts.categories)?;
    if opts.recipe.zero_init_residual {
        model.zero_init_residual();
    }
    model.metadata.training = serde_json::json!({
        "mode": "train",
        "recipe": opts.recipe,
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "limit_per_class": opts.limit_per_class,
        "data": opts.data,
        "drawings": data.len(),
    });
    run(model, &data, Mode::Full, &Common::from_train(opts))
}

/// Fine-tune `opts.checkpoint` on new data: the final layer is resized for `opts.categories`
/// (learned rows copied by name), then only it is trained unless `unfreeze_all`.
pub fn fine_tune(opts: &FineTuneOptions) -> Result<TrainReport, ModelError> {
    opts.recipe.validate()?;
    let base = Classifier::load(&opts.checkpoint)?;
    let data = Dataset::load(&opts.data, &opts.categories, opts.limit_per_class)?;
    let mut training = serde_json::Map::new();
    training.insert(
        "limit_per_class".into(),
        serde_json::json!(opts.limit_per_class),
    );
    training.insert("data".into(), serde_json::json!(opts.data));
    let in_memory = DatasetFineTuneOptions {
        val_fraction: opts.val_fraction,
        seed: opts.seed,
        recipe: opts.recipe.clone(),
        unfreeze_all: opts.unfreeze_all,
        out_dir: opts.out_dir.clone(),
        progress: opts.progress,
        max_minutes: opts.max_minutes,
        parent: Some(opts.checkpoint.display().to_string()),
        training,
    };
    fine_tune_dataset(&base, &data, &in_memory, &mut |_| {})
}

/// Fine-tune `base` on `data` (see [`DatasetFineTuneOptions`]): the final layer is resized for
/// `data.categories` (learned rows copied by name), then only it is trained unless
/// `unfreeze_all`; `on_epoch` is called after every epoch. The best checkpoint, `train_log.csv`,
/// `validation/` and `train_report.json` end up in `opts.out_dir`.
pub fn fine_tune_dataset(
    base: &Classifier,
    data: &Dataset,
    opts: &DatasetFineTuneOptions,
    on_epoch: &mut dyn FnMut(&EpochEnd<'_>),
) -> Result<TrainReport, ModelError> {
    opts.recipe.validate()?;
    tch::manual_seed(opts.seed as i64);
    let mut model = base.with_categories(&data.categories)?;
    model.metadata.parent = opts.parent.clone();
    let mut training = serde_json::json!({
        "mode": if opts.unfreeze_all { "fine-tune (all layers)" } else { "fine-tune (final layer)" },
        "recipe": opts.recipe,
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "drawings": data.len(),
        "base_training": base.metadata.training,
    });
    for (key, value) in &opts.training {
        training[key] = value.clone();
    }
    model.metadata.training = training;
    let mode = if opts.unfreeze_all {
        Mode::Full
    } else {
        Mode::HeadOnly
    };
    let common = Common {
        val_fraction: opts.val_fraction,
        seed: opts.seed,
        recipe: opts.recipe.clone(),
        out_dir: opts.out_dir.clone(),
        progress: opts.progress,
        max_minutes: opts.max_minutes,
    };
    run_with(model, data, mode, &common, on_epoch)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    /// Everything but `fc` frozen; the body runs in eval mode so BatchNorm statistics stay put.
    HeadOnly,
}

struct Common {
    val_fraction: f64,
    seed: u64,
    recipe: Recipe,
    out_dir: PathBuf,
    progress: bool,
    max_minutes: Option<f64>,
}

impl Common {
    fn from_train(o: &TrainOptions) -> Common {
        Common {
            val_fraction: o.val_fraction,
            seed: o.seed,
            recipe: o.recipe.clone(),
            out_dir: o.out_dir.clone(),
            progress: o.progress,
            max_minutes: o.max_minutes,
        }
    }
}

fn run(
    model: Classifier,
    data: &Dataset,
    mode: Mode,
    c: &Common,
) -> Result<TrainReport, ModelError> {
    run_with(model, data, mode, c, &mut |_| {})
}

fn run_with(
    mut model: Classifier,
    data: &Dataset,
    mode: Mode,
    c: &Common,
    on_epoch: &mut dyn FnMut(&EpochEnd<'_>),
) -> Result<TrainReport, ModelError> {
    let started = Instant::now();
    let r = &c.recipe;
    if !(0.0..1.0).contains(&c.val_fraction) || c.val_fraction == 0.0 {
        return Err(ModelError::Options(
            "validation fraction must be in (0, 1)".into(),
        ));
    }
    let (train_set, val_set) = data.split(c.val_fraction, c.seed);
    if train_set.len() < 2 || val_set.is_empty() {
        return Err(ModelError::Options(format!(
            "{} drawings are too few to train and validate",
            data.len()
        )));
    }
    model.metadata.data_fingerprint = data.fingerprint();
    model.metadata.tta_hflip = r.tta_hflip;
    // The run's own folder appears with its first epoch's log and checkpoint, so a run stopped
    // before that leaves nothing behind; its parent is made now, so a bad path fails at once.
    if let Some(parent) = c.out_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    }

    // Which variables learn, and which get weight decay.
    let vars = sorted_vars(&model.vs);
    for (name, t) in &vars {
        if mode == Mode::HeadOnly && !name.starts_with("fc.") {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
    }
    let trained: Vec<Tensor> = vars
        .iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(_, t)| t.shallow_clone())
        .collect();
    let decayed: Vec<Tensor> = trained
        .iter()
        .filter(|t| t.dim() > 1)
        .map(Tensor::shallow_clone)
        .collect();
    let mut opt = nn::Sgd {
        momentum: r.momentum,
        dampening: 0.0,
        wd: 0.0,
        nesterov: r.momentum > 0.0,
    }
    .build(&model.vs, r.lr)?;

    // EMA: a second network whose variables trail the trained ones.
    let ema = if r.ema_decay > 0.0 {
        let e = Classifier::new_untrained(model.net.architecture(), model.categories())?;
        let evars = sorted_vars(&e.vs);
        tch::no_grad(|| {
            for ((_, d), (_, s)) in evars.iter().zip(&vars) {
                d.shallow_clone().copy_(s);
            }
        });
        Some((e, evars))
    } else {
        None
    };

    let n = train_set.len();
    let bs = r.batch_size.min(n);
    // Drop the last partial batch: BatchNorm after the 1×1 last stage cannot take one drawing.
    let steps_per_epoch = (n / bs).max(1);
    let mut epochs = r.epochs;
    let mut total_steps = (steps_per_epoch * epochs).max(1);
    let mut warm = (r.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let lr_at = |step: usize, total_steps: usize, warm: usize| -> f64 {
        if step < warm {
            r.lr * (step + 1) as f64 / warm as f64
        } else {
            let t = (step - warm) as f64 / total_steps.saturating_sub(warm).max(1) as f64;
            0.5 * r.lr * (1.0 + (PI * t).cos())
        }
    };
    // With a time budget, the first few steps are timed and, when the planned epochs clearly
    // cannot fit, the run is planned again for the epochs that do (warm-up shortened in
    // proportion), before the schedule has gone far. After that every epoch's duration
    // (validation included) is measured, and when the remaining epochs would not fit in the
    // remaining time the run is shortened again: the cosine is laid out over the new total (the
    // rate only ever steps down, never up). On a machine fast enough for the budget nothing
    // changes and the run is exactly reproducible.
    let deadline = c
        .max_minutes
        .map(|m| started + std::time::Duration::from_secs_f64(m * 60.0));

    let mut rng = Rng::new(c.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..n).collect();
    let mut logs: Vec<EpochLog> = Vec::new();
    let mut best: Option<(usize, &'static str, Evaluation)> = None;
    let mut step = 0usize;
    let mut batch_pixels = Vec::with_capacity(bs * IMAGE_PIXELS);
    let mut batch_labels = Vec::with_capacity(bs);
    tracing::info!(
        train = n,
        validation = val_set.len(),
        epochs = r.epochs,
        steps_per_epoch,
        ?mode,
        "training {} on {} categories",
        model.metadata.architecture,
        model.categories().len()
    );

    let mut epoch = 0;
    while epoch < epochs {
        epoch += 1;
        let epoch_start = Instant::now();
        rng.shuffle(&mut order);
        let pb = progress_bar(c.progress, steps_per_epoch as u64, epoch, epochs);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0i64, 0usize);
        let (mut clipped, mut grad_norm_sum, mut grad_norm_max) = (0usize, 0.0f64, 0.0f64);
        let mut lr = r.lr;
        for b in 0..steps_per_epoch {
            batch_pixels.clear();
            batch_labels.clear();
            for &i in &order[b * bs..(b + 1) * bs] {
                batch_pixels.extend_from_slice(train_set.image(i));
                batch_labels.push(train_set.labels[i]);
            }
            let xs = augment(&input::to_tensor(&batch_pixels), &r.augment, &mut rng);
            let ys = Tensor::from_slice(&batch_labels);
            if let Some(deadline) = deadline.filter(|_| step == PROBE_STEPS && epoch == 1) {
                // Validation costs about a tenth of an epoch's training here.
                let per_epoch = epoch_start.elapsed().as_secs_f64() / PROBE_STEPS as f64
                    * steps_per_epoch as f64
                    * 1.1;
                let budget = deadline.saturating_duration_since(started).as_secs_f64();
                let fit = ((budget / per_epoch).floor() as usize).max(1);
                if fit < epochs {
                    tracing::info!(
                        "time budget: {:.1} min at about {:.0} s per epoch, so {fit} epochs instead of {epochs}",
                        budget / 60.0,
                        per_epoch
                    );
                    warm = warm * fit / epochs;
                    epochs = fit;
                    total_steps = steps_per_epoch * epochs;
                }
            }
            lr = lr_at(step, total_steps, warm);
            opt.set_lr(lr);
            let logits = match mode {
                Mode::Full => model.net.logits(&xs, true),
                Mode::HeadOnly => {
                    let f = tch::no_grad(|| model.net.features(&xs, false));
                    model.net.head(&f)
                }
            };
            let loss = logits.cross_entropy_loss::<Tensor>(
                &ys,
                None,
                Reduction::Mean,
                -100,
                r.label_smoothing,
            );
            opt.zero_grad();
            loss.backward();
            let norm = clip_grad_norm(&trained, r.max_grad_norm);
            grad_norm_sum += norm;
            grad_norm_max = grad_norm_max.max(norm);
            if r.max_grad_norm > 0.0 && norm > r.max_grad_norm {
                clipped += 1;
            }
            if r.weight_decay > 0.0 {
                tch::no_grad(|| {
                    for p in &decayed {
                        let mut g = p.grad();
                        if g.defined() {
                            let _ = g.g_add_(&(p * r.weight_decay));
                        }
                    }
                });
            }
            opt.step();
            if let Some((_, evars)) = &ema {
                // Warm-up of the average itself, so early epochs are not dominated by the init.
                let d = r.ema_decay.min((1 + step) as f64 / (10 + step) as f64);
                tch::no_grad(|| {
                    for ((_, e), (_, v)) in evars.iter().zip(&vars) {
                        let mut e = e.shallow_clone();
                        if e.is_floating_point() {
                            let _ = e.g_mul_scalar_(d);
                            let _ = e.g_add_(&(v * (1.0 - d)));
                        } else {
                            e.copy_(v);
                        }
                    }
                });
            }
            step += 1;
            let l = loss.double_value(&[]);
            loss_sum += l * bs as f64;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&ys)
                .sum(Kind::Int64)
                .int64_value(&[]);
            seen += bs;
            pb.set_message(format!(
                "loss {:.3} acc {:.1}% lr {lr:.4}",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
            pb.inc(1);
        }
        pb.finish_and_clear();
        let train_seconds = epoch_start.elapsed().as_secs_f64();

        let eval_bs = 256;
        let raw = evaluate_network(&model.net, r.tta_hflip, &val_set, eval_bs);
        let ema_eval = ema
            .as_ref()
            .map(|(e, _)| evaluate_network(&e.net, r.tta_hflip, &val_set, eval_bs));
        let log = EpochLog {
            epoch,
            lr,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_accuracy: raw.top1,
            val_top3: raw.top3,
            ema_val_accuracy: ema_eval.as_ref().map(|e| e.top1),
            ema_val_top3: ema_eval.as_ref().map(|e| e.top3),
            seconds: epoch_start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
        };
        tracing::info!(
            "epoch {epoch}/{epochs}: loss {:.4}, train acc {:.2}%, val top-1 {:.2}% top-3 {:.2}%{}, {:.0} s ({:.0} img/s), gradient norm mean {:.2} max {:.2}, clipped in {clipped} of {steps_per_epoch} steps",
            log.train_loss,
            log.train_accuracy * 100.0,
            log.val_accuracy * 100.0,
            log.val_top3 * 100.0,
            log.ema_val_accuracy
                .map(|a| format!(", EMA top-1 {:.2}%", a * 100.0))
                .unwrap_or_default(),
            log.seconds,
            log.images_per_second,
            grad_norm_sum / steps_per_epoch as f64,
            grad_norm_max
        );
        if let Some(deadline) = deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            let fit = epoch + (left / log.seconds).floor() as usize;
            if fit < epochs {
                tracing::info!(
                    "time budget: {:.1} min left at {:.0} s per epoch, so {fit} epochs instead of {epochs}",
                    left / 60.0,
                    log.seconds
                );
                epochs = fit.max(epoch);
                total_steps = steps_per_epoch * epochs;
            }
        }
        logs.push(log);
        write_log(&c.out_dir.join("train_log.csv"), &logs)?;

        // Keep the best of the raw and EMA weights.
        let mut candidates = vec![("weights", &raw)];
        if let Some(e) = &ema_eval {
            candidates.push(("ema", e));
        }
        for (source, eval) in candidates {
            let better = best
                .as_ref()
                .is_none_or(|(_, _, b)| (eval.top1, eval.top3) > (b.top1, b.top3));
            if better {
                let mut meta = model.metadata.clone();
                meta.training["epochs_run"] = serde_json::json!(epochs);
                fill_metadata(&mut meta, eval);
                let vs = match (&ema, source) {
                    (Some((e, _)), "ema") => &e.vs,
                    _ => &model.vs,
                };
                write_checkpoint(vs, &meta, &c.out_dir)?;
                best = Some((epoch, source, eval.clone()));
            }
        }
        let last = logs.last().expect("this epoch's log was just pushed");
        on_epoch(&EpochEnd {
            log: last,
            validation: &raw,
            ema_validation: ema_eval.as_ref(),
            epochs,
            best_epoch: best.as_ref().map_or(epoch, |(e, _, _)| *e),
            seconds_left: seconds_left(epoch, epochs, last.seconds, deadline),
        });
    }

    let (best_epoch, source, validation) = best.expect("at least one epoch ran");
    validation.write_reports(&c.out_dir.join("validation"))?;
    let report = TrainReport {
        out_dir: c.out_dir.clone(),
        best_epoch,
        best_source: source.to_string(),
        validation,
        epochs: logs,
        train_size: train_set.len(),
        val_size: val_set.len(),
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
    };
    let path = c.out_dir.join("train_report.json");
    write_atomic(
        &path,
        serde_json::to_string_pretty(&report)
            .expect("serialises")
            .as_bytes(),
    )?;
    Ok(report)
}

/// The time the remaining epochs should take at this epoch's pace, capped by the deadline.
fn seconds_left(epoch: usize, epochs: usize, per_epoch: f64, deadline: Option<Instant>) -> f64 {
    let at_pace = epochs.saturating_sub(epoch) as f64 * per_epoch;
    match deadline {
        Some(d) => at_pace.min(d.saturating_duration_since(Instant::now()).as_secs_f64()),
        None => at_pace,
    }
}

fn fill_metadata(meta: &mut crate::Metadata, eval: &Evaluation) {
    meta.val_accuracy = Some(eval.top1);
    meta.val_top3 = Some(eval.top3);
    meta.val_per_class = Some(eval.per_class.iter().map(|c| c.top1).collect());
    meta.created_at = now_rfc3339();
}

/// Scale the gradients of `params` so their global L2 norm is at most `max` (0 = never); the
/// norm before scaling.
fn clip_grad_norm(params: &[Tensor], max: f64) -> f64 {
    tch::no_grad(|| {
        let norms: Vec<Tensor> = params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .map(|g| g.norm())
            .collect();
        if norms.is_empty() {
            return 0.0;
        }
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if max <= 0.0 || total <= max || !total.is_finite() {
            return total;
        }
        let scale = max / total;
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(scale);
            }
        }
        total
    })
}

fn sorted_vars(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Random affine transform of each drawing in an `n × 1 × 28 × 28` batch (bilinear, zero
/// padding = background).
pub(crate) fn augment(xs: &Tensor, a: &Augment, rng: &mut Rng) -> Tensor {
    let identity = a.rotate_deg == 0.0
        && a.scale_min == 1.0
        && a.scale_max == 1.0
        && a.shift_px == 0.0
        && !a.hflip;
    if identity {
        return xs.shallow_clone();
    }
    let n = xs.size()[0];
    let mut theta = Vec::with_capacity(n as usize * 6);
    for _ in 0..n {
        let angle = rng.uniform(-a.rotate_deg, a.rotate_deg).to_radians();
        let scale = rng.uniform(a.scale_min, a.scale_max);
        // Normalised coordinates span 2 units over 28 pixels.
        let tx = rng.uniform(-a.shift_px, a.shift_px) * 2.0 / 28.0;
        let ty = rng.uniform(-a.shift_px, a.shift_px) * 2.0 / 28.0;
        let flip = if a.hflip && rng.unit() < 0.5 {
            -1.0
        } else {
            1.0
        };
        // theta maps output coordinates to input coordinates: (1/scale)·R(angle)·diag(flip, 1).
        let (s, c) = angle.sin_cos();
        let k = 1.0 / scale;
        theta.extend_from_slice(&[
            (k * c * flip) as f32,
            (-k * s) as f32,
            tx as f32,
            (k * s * flip) as f32,
            (k * c) as f32,
            ty as f32,
        ]);
    }
    let theta = Tensor::from_slice(&theta).view([n, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta, [n, 1, 28, 28], false);
    xs.grid_sampler(&grid, 0, 0, false)
}

fn progress_bar(enabled: bool, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("epoch {epoch}/{epochs}"));
    pb
}

fn write_log(path: &Path, logs: &[EpochLog]) -> Result<(), ModelError> {
    let mut s = String::from(
        "epoch,lr,train_loss,train_accuracy,val_accuracy,val_top3,ema_val_accuracy,ema_val_top3,seconds,images_per_second\n",
    );
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.5}")).unwrap_or_default();
    for l in logs {
        s.push_str(&format!(
            "{},{:.6},{:.5},{:.5},{:.5},{:.5},{},{},{:.1},{:.1}\n",
            l.epoch,
            l.lr,
            l.train_loss,
            l.train_accuracy,
            l.val_accuracy,
            l.val_top3,
            opt(l.ema_val_accuracy),
            opt(l.ema_val_top3),
            l.seconds,
            l.images_per_second
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    write_atomic(path, s.as_bytes())
}

/// Read a `train_log.csv` written by [`train`] (for the learning-curve plot).
pub fn read_log(path: &Path) -> Result<Vec<EpochLog>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || ModelError::bad_data(path, format!("line {}: not a training log row", i + 1));
        if f.len() != 10 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        let opt = |s: &str| {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        out.push(EpochLog {
            epoch: f[0].parse().map_err(|_| bad())?,
            lr: num(f[1])?,
            train_loss: num(f[2])?,
            train_accuracy: num(f[3])?,
            val_accuracy: num(f[4])?,
            val_top3: num(f[5])?,
            ema_val_accuracy: opt(f[6])?,
            ema_val_top3: opt(f[7])?,
            seconds: num(f[8])?,
            images_per_second: num(f[9])?,
        });
    }
    Ok(out)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::clip_grad_norm;
    use tch::{Kind, Tensor};

    /// Two parameters whose loss `3·Σp + 4·Σq` gives gradients of global norm 5·√4 = 10.
    fn params_with_grads() -> Vec<Tensor> {
        let p = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let q = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        (p.sum(Kind::Float) * 3.0 + q.sum(Kind::Float) * 4.0).backward();
        vec![p, q]
    }

    #[test]
    fn gradients_over_the_limit_are_scaled_to_it() {
        let ps = params_with_grads();
        assert!((clip_grad_norm(&ps, 5.0) - 10.0).abs() < 1e-5);
        assert!((ps[0].grad().double_value(&[0, 0]) - 1.5).abs() < 1e-6);
        assert!((ps[1].grad().double_value(&[3]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn gradients_under_the_limit_or_with_no_limit_are_left_alone() {
        let ps = params_with_grads();
        assert!((clip_grad_norm(&ps, 10.5) - 10.0).abs() < 1e-5);
        assert_eq!(ps[0].grad().double_value(&[1, 1]), 3.0);
        assert_eq!(ps[1].grad().double_value(&[0]), 4.0);
        assert!((clip_grad_norm(&ps, 0.0) - 10.0).abs() < 1e-5);
        assert_eq!(ps[0].grad().double_value(&[0, 1]), 3.0);
    }
}
