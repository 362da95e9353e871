//! `doodle-model`: train, evaluate, fine-tune and benchmark the doodle classifier.
//! A thin CLI over the `doodle_model` library; defaults come from `config.toml` (`[model]`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use doodle_core::config::{Architecture, Settings};
use doodle_model::train::{Augment, Recipe};
use doodle_model::{
    Classifier, Dataset, FineTuneOptions, TrainOptions, data, download, evaluate, plot,
};

#[derive(Debug, Parser)]
#[command(name = "doodle-model", version, about)]
struct Cli {
    /// libtorch threads (default: `model.threads` from the configuration; 0 = all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model from scratch; the best checkpoint (by validation top-1) goes to --out.
    Train(TrainArgs),
    /// Top-1/top-3 overall and per category, confusion matrix (CSV and PNG), learning curve.
    Evaluate(EvaluateArgs),
    /// Fine-tune a checkpoint, possibly adding categories (final layer only unless --unfreeze-all).
    FineTune(FineTuneArgs),
    /// Fetch the first N drawings per category from the public Quick, Draw! numpy bitmaps.
    Download(DownloadArgs),
    /// Forward latency and training throughput on this machine.
    Bench(BenchArgs),
    /// `make model`: train the default model on the configured data (downloading it if it is
    /// not there) into models/base/<timestamp>/ and print that path.
    Base(BaseArgs),
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Data directories (`<c>.npy`, `<c>/*.png`) or `.npz` files (default: `model.data_dir`).
    #[arg(long = "data")]
    data: Vec<PathBuf>,
    /// `categories.txt`, one name per line in label order (default: `model.categories_file`).
    #[arg(long)]
    categories: Option<PathBuf>,
    /// Use only the first N drawings of each category.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Debug, Args)]
struct RecipeArgs {
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long)]
    label_smoothing: Option<f64>,
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// EMA decay of the weights (0 = off).
    #[arg(long)]
    ema_decay: Option<f64>,
    /// No mirrored test-time augmentation.
    #[arg(long)]
    no_tta: bool,
    /// No random mirroring during training.
    #[arg(long)]
    no_hflip: bool,
    /// No augmentation at all.
    #[arg(long)]
    no_augment: bool,
    /// Global gradient-norm limit (0 = no clipping).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Keep the random initialisation of each residual block's last BatchNorm.
    #[arg(long)]
    no_zero_init_residual: bool,
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl RecipeArgs {
    fn apply(&self, mut r: Recipe) -> Recipe {
        if let Some(v) = self.epochs {
            r.epochs = v;
        }
        if let Some(v) = self.batch_size {
            r.batch_size = v;
        }
        if let Some(v) = self.lr {
            r.lr = v;
        }
        if let Some(v) = self.weight_decay {
            r.weight_decay = v;
        }
        if let Some(v) = self.label_smoothing {
            r.label_smoothing = v;
        }
        if let Some(v) = self.warmup_epochs {
            r.warmup_epochs = v;
        }
        if let Some(v) = self.ema_decay {
            r.ema_decay = v;
        }
        if self.no_tta {
            r.tta_hflip = false;
        }
        if self.no_hflip {
            r.augment.hflip = false;
        }
        if self.no_augment {
            r.augment = Augment::none();
        }
        if let Some(v) = self.max_grad_norm {
            r.max_grad_norm = v;
        }
        if self.no_zero_init_residual {
            r.zero_init_residual = false;
        }
        r
    }
}

#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// resnet50 or resnet18 (default: `model.architecture`).
    #[arg(long, value_parser = parse_arch)]
    arch: Option<Architecture>,
    /// Output checkpoint directory.
    #[arg(long)]
    out: PathBuf,
    /// Lower the number of epochs so the run ends within about this many minutes.
    #[arg(long)]
    max_minutes: Option<f64>,
}

#[derive(Debug, Args)]
struct EvaluateArgs {
    /// Checkpoint directory.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Write evaluation.json, per_class.csv, confusion.csv/png (and learning_curve.png) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Plot this training log (default: the checkpoint's train_log.csv, if any).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Evaluate only the validation part of the stratified split that `train` makes with this
    /// fraction (and --seed): the drawings a model trained on the same data never saw.
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Seed of that split (train's default is 42).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Evaluate without mirrored test-time augmentation, whatever the checkpoint says.
    #[arg(long)]
    no_tta: bool,
}

#[derive(Debug, Args)]
struct FineTuneArgs {
    /// Checkpoint to start from.
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Train every layer, not just the final one.
    #[arg(long)]
    unfreeze_all: bool,
    #[arg(long)]
    out: PathBuf,
    /// Lower the number of epochs so the run ends within about this many minutes.
    #[arg(long)]
    max_minutes: Option<f64>,
}

#[derive(Debug, Args)]
struct DownloadArgs {
    #[arg(long)]
    categories: Option<PathBuf>,
    /// Drawings per category.
    #[arg(long, default_value_t = 2000)]
    rows: usize,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = download::QUICKDRAW_NUMPY_BITMAP)]
    base_url: String,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[arg(long, value_parser = parse_arch)]
    arch: Option<Architecture>,
    #[arg(long, default_value_t = 20)]
    iters: usize,
    #[arg(long, default_value_t = 8)]
    train_steps: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BaseArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Parent of the timestamped checkpoint directory.
    #[arg(long, default_value = "models/base")]
    out_root: PathBuf,
    /// Where downloaded data is kept when `model.data_dir` does not exist.
    #[arg(long, default_value = "data/quickdraw/train")]
    download_dir: PathBuf,
    /// Drawings per category to download.
    #[arg(long, default_value_t = 2000)]
    rows: usize,
    #[arg(long, default_value = download::QUICKDRAW_NUMPY_BITMAP)]
    base_url: String,
    /// Lower the number of epochs so training ends within about this many minutes (a first
    /// model for `make run`).
    #[arg(long)]
    max_minutes: Option<f64>,
}

fn parse_arch(s: &str) -> Result<Architecture, String> {
    doodle_model::net::parse_architecture(s)
        .ok_or_else(|| format!("`{s}`: expected resnet50 or resnet18"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("doodle-model: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load().context("loading the configuration")?;
    let threads =
        doodle_core::config::resolve_threads(cli.threads.unwrap_or(settings.model.threads));
    tch::set_num_threads(threads as i32);
    let progress = !cli.quiet;
    match cli.command {
        Command::Train(a) => {
            let (sources, categories) = resolve_data(&a.data, &settings)?;
            let opts = TrainOptions {
                architecture: a.arch.unwrap_or(settings.model.architecture),
                data: sources,
                categories,
                limit_per_class: a.data.limit,
                val_fraction: a.recipe.val_fraction,
                seed: a.recipe.seed,
                recipe: a.recipe.apply(Recipe::default()),
                out_dir: a.out,
                progress,
                max_minutes: a.max_minutes,
            };
            let report = doodle_model::train(&opts)?;
            print_report(&report);
        }
        Command::FineTune(a) => {
            let (sources, categories) = resolve_data(&a.data, &settings)?;
            let opts = FineTuneOptions {
                checkpoint: a.from,
                data: sources,
                categories,
                limit_per_class: a.data.limit,
                val_fraction: a.recipe.val_fraction,
                seed: a.recipe.seed,
                recipe: a.recipe.apply(Recipe::fine_tune()),
                unfreeze_all: a.unfreeze_all,
                out_dir: a.out,
                progress,
                max_minutes: a.max_minutes,
            };
            let report = doodle_model::fine_tune(&opts)?;
            print_report(&report);
        }
        Command::Evaluate(a) => {
            if let Some(f) = a.val_fraction.filter(|f| !(*f > 0.0 && *f < 1.0)) {
                bail!("--val-fraction must be between 0 and 1, got {f}");
            }
            let mut model = Classifier::load(&a.model)?;
            if a.no_tta {
                model.metadata_mut().tta_hflip = false;
            }
            let (sources, categories) = if a.data.categories.is_none() && a.data.data.is_empty() {
                let (s, _) = resolve_data(&a.data, &settings)?;
                (s, model.categories().to_vec())
            } else {
                resolve_data(&a.data, &settings)?
            };
            let mut ds = Dataset::load(&sources, &categories, a.data.limit)?;
            if let Some(fraction) = a.val_fraction {
                ds = ds.split(fraction, a.seed).1;
            }
            let eval = evaluate::evaluate(&model, &ds, 256)?;
            print!("{}", eval.summary());
            if let Some(out) = &a.out {
                eval.write_reports(out)?;
                let log = a
                    .log
                    .clone()
                    .unwrap_or_else(|| a.model.join("train_log.csv"));
                if log.is_file() {
                    let logs = doodle_model::train::read_log(&log)?;
                    let p = out.join("learning_curve.png");
                    std::fs::write(&p, plot::learning_curve_png(&logs))
                        .with_context(|| p.display().to_string())?;
                }
                println!("reports written to {}", out.display());
            }
        }
        Command::Download(a) => {
            let categories = data::read_categories(
                &a.categories
                    .unwrap_or(settings.model.categories_file.clone()),
            )?;
            let files =
                download::download_categories(&a.base_url, &categories, a.rows, &a.out, progress)?;
            println!("{} files in {}", files.len(), a.out.display());
        }
        Command::Bench(a) => {
            let report = doodle_model::bench::run(
                a.arch.unwrap_or(settings.model.architecture),
                &[1, 32, 128],
                &[64, 128],
                a.iters,
                a.train_steps,
            )?;
            let json = serde_json::to_string_pretty(&report)?;
            println!("{json}");
            if let Some(p) = a.json {
                std::fs::write(&p, json).with_context(|| p.display().to_string())?;
            }
        }
        Command::Base(a) => base(a, &settings, progress)?,
    }
    Ok(())
}

/// Data sources and label order from the flags, else from the configuration.
fn resolve_data(a: &DataArgs, settings: &Settings) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let sources = if a.data.is_empty() {
        vec![settings.model.data_dir.clone()]
    } else {
        a.data.clone()
    };
    let cat_file = a
        .categories
        .clone()
        .unwrap_or_else(|| settings.model.categories_file.clone());
    let categories = data::read_categories(&cat_file)?;
    Ok((sources, categories))
}

fn base(a: BaseArgs, settings: &Settings, progress: bool) -> anyhow::Result<()> {
    let m = &settings.model;
    let categories = if m.categories_file.is_file() {
        data::read_categories(&m.categories_file)?
    } else {
        tracing::info!(
            "{} not found; using the 15 default categories",
            m.categories_file.display()
        );
        doodle_model::DEFAULT_CATEGORIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let source = if has_all(&m.data_dir, &categories) {
        m.data_dir.clone()
    } else {
        tracing::info!(
            "{} does not hold every category; downloading the first {} drawings of each into {}",
            m.data_dir.display(),
            a.rows,
            a.download_dir.display()
        );
        if let Err(e) = download::download_categories(
            &a.base_url,
            &categories,
            a.rows,
            &a.download_dir,
            progress,
        ) {
            bail!(
                "no training data: {} is missing and the download failed ({e}).\n\
                 Put Quick, Draw! numpy bitmaps (<category>.npy) in {} or point `model.data_dir` \
                 (DOODLE_MODEL__DATA_DIR) at a folder that has them, then run `make model` again.",
                m.data_dir.display(),
                a.download_dir.display()
            );
        }
        a.download_dir.clone()
    };
    let stamp = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))?;
    let out = a.out_root.join(stamp);
    let opts = TrainOptions {
        architecture: m.architecture,
        data: vec![source],
        categories,
        limit_per_class: None,
        val_fraction: a.recipe.val_fraction,
        seed: a.recipe.seed,
        recipe: a.recipe.apply(Recipe::default()),
        out_dir: out.clone(),
        progress,
        max_minutes: a.max_minutes,
    };
    let report = doodle_model::train(&opts)?;
    print_report(&report);
    println!("{}", out.display());
    Ok(())
}

fn has_all(dir: &Path, categories: &[String]) -> bool {
    dir.is_dir()
        && categories
            .iter()
            .all(|c| dir.join(format!("{c}.npy")).is_file() || dir.join(c).is_dir())
}

fn print_report(r: &doodle_model::TrainReport) {
    eprintln!(
        "best epoch {} ({} weights): validation top-1 {:.2}%, top-3 {:.2}% on {} drawings; {:.1} min{}",
        r.best_epoch,
        r.best_source,
        r.validation.top1 * 100.0,
        r.validation.top3 * 100.0,
        r.val_size,
        r.seconds / 60.0,
        r.peak_rss_mib
            .map(|m| format!(", peak RSS {m:.0} MiB"))
            .unwrap_or_default()
    );
    eprint!("{}", r.validation.summary());
    eprintln!("checkpoint: {}", r.out_dir.display());
}
