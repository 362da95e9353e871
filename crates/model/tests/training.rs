//! Training, fine-tuning and evaluation end to end on a few hundred real drawings.

mod common;

use std::path::PathBuf;

use common::names;
use doodle_core::config::Architecture;
use doodle_model::train::{Augment, Recipe};
use doodle_model::{Classifier, Dataset, FineTuneOptions, TrainOptions, evaluate, save_untrained};

fn train_dir() -> PathBuf {
    common::quickdraw().join("train")
}

/// The test runner runs tests side by side: one libtorch thread each keeps two cores from
/// being oversubscribed (OpenMP threads that spin on a busy core are very slow).
fn one_thread() {
    tch::set_num_threads(1);
}

fn small_recipe(epochs: usize) -> Recipe {
    Recipe {
        epochs,
        batch_size: 32,
        lr: 0.05,
        warmup_epochs: 0.0,
        ema_decay: 0.0,
        tta_hflip: false,
        augment: Augment {
            hflip: false,
            ..Augment::default()
        },
        ..Recipe::default()
    }
}

fn options(out: PathBuf, limit: usize, epochs: usize) -> TrainOptions {
    one_thread();
    TrainOptions {
        architecture: Architecture::Resnet18,
        data: vec![train_dir()],
        categories: names(&["apple", "bicycle", "rainbow"]),
        limit_per_class: Some(limit),
        val_fraction: 0.2,
        seed: 1,
        recipe: small_recipe(epochs),
        out_dir: out,
        progress: false,
        max_minutes: None,
    }
}

#[test]
fn a_small_training_run_ends_well_above_chance() {
    let out = tempfile::tempdir().unwrap();
    let report = doodle_model::train(&options(out.path().to_path_buf(), 200, 4)).unwrap();
    assert_eq!(report.val_size, 120);
    assert_eq!(report.epochs.len(), 4);
    assert!(
        report.validation.top1 >= 0.75,
        "3 categories: chance is 33%, got {:.1}%",
        report.validation.top1 * 100.0
    );

    // The best checkpoint is on disk with its metadata and reports.
    let model = Classifier::load(out.path()).unwrap();
    let meta = model.metadata();
    assert_eq!(meta.val_accuracy, Some(report.validation.top1));
    assert_eq!(meta.categories, names(&["apple", "bicycle", "rainbow"]));
    assert!(meta.data_fingerprint.starts_with("sha256:"));
    assert!(meta.created_at.ends_with('Z'));
    assert_eq!(meta.training["recipe"]["epochs"], 4);
    for f in [
        "train_log.csv",
        "train_report.json",
        "validation/confusion.csv",
        "validation/confusion.png",
    ] {
        assert!(out.path().join(f).is_file(), "{f}");
    }
    let log = doodle_model::train::read_log(&out.path().join("train_log.csv")).unwrap();
    assert_eq!(log.len(), report.epochs.len());
    for (read, kept) in log.iter().zip(&report.epochs) {
        assert_eq!(read.epoch, kept.epoch);
        assert!((read.val_accuracy - kept.val_accuracy).abs() < 1e-4);
        assert!((read.train_loss - kept.train_loss).abs() < 1e-4);
    }

    // Evaluating the saved model on the same validation split reproduces its number.
    let data = Dataset::load(
        &[train_dir()],
        &names(&["apple", "bicycle", "rainbow"]),
        Some(200),
    )
    .unwrap();
    let (_, val) = data.split(0.2, 1);
    let eval = evaluate::evaluate(&model, &val, 64).unwrap();
    assert_eq!(eval.top1, report.validation.top1);
    assert!(eval.top3 >= eval.top1);
    assert_eq!(eval.confusion.iter().flatten().sum::<u64>(), 120);

    let reports = out.path().join("eval");
    eval.write_reports(&reports).unwrap();
    let png = image::open(reports.join("confusion.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);
    let curve = doodle_model::plot::learning_curve_png(&log);
    assert!(image::load_from_memory(&curve).is_ok());
    assert!(
        std::fs::read_to_string(reports.join("confusion.csv"))
            .unwrap()
            .starts_with("true\\predicted,apple,bicycle,rainbow\n")
    );
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = doodle_model::train(&options(a.path().to_path_buf(), 40, 1)).unwrap();
    let rb = doodle_model::train(&options(b.path().to_path_buf(), 40, 1)).unwrap();
    assert_eq!(ra.epochs[0].train_loss, rb.epochs[0].train_loss);
    assert_eq!(ra.validation, rb.validation);
    let (ma, mb) = (
        Classifier::load(a.path()).unwrap(),
        Classifier::load(b.path()).unwrap(),
    );
    let (va, vb) = (ma.var_store().variables(), mb.var_store().variables());
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{name} differs");
    }
}

#[test]
fn fine_tuning_adds_a_category_and_trains_only_the_final_layer() {
    one_thread();
    let base = tempfile::tempdir().unwrap();
    save_untrained(
        base.path(),
        Architecture::Resnet18,
        &names(&["apple", "rainbow"]),
        9,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = doodle_model::fine_tune(&FineTuneOptions {
        checkpoint: base.path().to_path_buf(),
        data: vec![train_dir()],
        categories: names(&["apple", "bicycle", "rainbow"]),
        limit_per_class: Some(60),
        val_fraction: 0.2,
        seed: 2,
        recipe: Recipe {
            epochs: 1,
            ..small_recipe(1)
        },
        unfreeze_all: false,
        out_dir: out.path().to_path_buf(),
        progress: false,
        max_minutes: None,
    })
    .unwrap();
    assert_eq!(report.epochs.len(), 1);

    let before = Classifier::load(base.path()).unwrap();
    let after = Classifier::load(out.path()).unwrap();
    assert_eq!(
        after.categories(),
        &names(&["apple", "bicycle", "rainbow"])[..]
    );
    assert_eq!(
        after.metadata().parent.as_deref(),
        Some(base.path().to_str().unwrap())
    );
    let (vb, va) = (
        before.var_store().variables(),
        after.var_store().variables(),
    );
    for (name, t) in &vb {
        if !name.starts_with("fc.") {
            assert!(t.equal(&va[name]), "{name} changed although frozen");
        }
    }
    assert_eq!(va["fc.weight"].size(), [3, 512]);
    assert!(
        !va["fc.weight"].get(0).equal(&vb["fc.weight"].get(0)),
        "the final layer learned"
    );
}

#[test]
fn bad_options_are_errors() {
    let out = tempfile::tempdir().unwrap();
    let mut o = options(out.path().to_path_buf(), 10, 1);
    o.recipe.batch_size = 1;
    assert!(
        doodle_model::train(&o)
            .unwrap_err()
            .to_string()
            .contains("batch size")
    );
    let mut o = options(out.path().to_path_buf(), 10, 1);
    o.categories = names(&["apple", "unicorn"]);
    assert!(
        doodle_model::train(&o)
            .unwrap_err()
            .to_string()
            .contains("unicorn")
    );
}
