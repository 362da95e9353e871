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

/// The validation drawings that a run with [`options`]`(_, limit, _)` holds out.
fn held_out(limit: usize) -> Dataset {
    let data = Dataset::load(
        &[train_dir()],
        &names(&["apple", "bicycle", "rainbow"]),
        Some(limit),
    )
    .unwrap();
    data.split(0.2, 1).1
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
    // JSON keeps the number to within one unit in the last place (serde_json's default parser).
    let stored = meta
        .val_accuracy
        .expect("validation accuracy in the metadata");
    assert!(
        (stored - report.validation.top1).abs() < 1e-12,
        "{stored} vs {}",
        report.validation.top1
    );
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
    // Every file was written through a temporary one that was renamed: none is left over.
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let log = doodle_model::train::read_log(&out.path().join("train_log.csv")).unwrap();
    assert_eq!(log.len(), report.epochs.len());
    for (read, kept) in log.iter().zip(&report.epochs) {
        assert_eq!(read.epoch, kept.epoch);
        assert!((read.val_accuracy - kept.val_accuracy).abs() < 1e-4);
        assert!((read.train_loss - kept.train_loss).abs() < 1e-4);
    }

    // Evaluating the saved model on the same validation split reproduces its number.
    let val = held_out(200);
    let eval = evaluate::evaluate(&model, &val, 64).unwrap();
    assert!((eval.top1 - report.validation.top1).abs() < 1e-12);
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
    let refused = |change: fn(&mut TrainOptions), needle: &str| {
        let mut o = options(out.path().to_path_buf(), 10, 1);
        change(&mut o);
        let err = doodle_model::train(&o).unwrap_err().to_string();
        assert!(err.contains(needle), "says `{needle}`: {err}");
    };
    refused(|o| o.recipe.batch_size = 1, "batch size");
    refused(|o| o.recipe.max_grad_norm = -1.0, "gradient norm limit");
    refused(|o| o.categories = names(&["apple", "unicorn"]), "unicorn");
}

#[test]
fn a_run_stopped_during_its_first_epoch_leaves_no_folder() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("models").join("run");
    // All 30 000 drawings through a ResNet50: the first epoch takes minutes, so the run is
    // certainly inside it when it is stopped.
    let mut child = Command::new(env!("CARGO_BIN_EXE_doodle-model"))
        .args([
            "--quiet", "train", "--arch", "resnet50", "--epochs", "2", "--data",
        ])
        .arg(train_dir())
        .arg("--categories")
        .arg(common::quickdraw().join("categories.txt"))
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let started = line.contains("training resnet50 on 15 categories");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("training resnet50")),
        "training never started: {seen:#?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.parent().unwrap().is_dir(),
        "the parent is made up front"
    );
    assert!(!out.exists(), "a stopped run left {}", out.display());
}

#[test]
fn evaluate_cli_scores_the_held_out_split_with_or_without_mirroring() {
    let out = tempfile::tempdir().unwrap();
    let report = doodle_model::train(&options(out.path().to_path_buf(), 40, 1)).unwrap();
    let cats = out.path().join("categories.txt");
    std::fs::write(&cats, "apple\nbicycle\nrainbow\n").unwrap();

    // The same checkpoint, marked for mirrored test-time augmentation.
    let mirrored = out.path().join("mirrored");
    let mut model = Classifier::load(out.path()).unwrap();
    model.metadata_mut().tta_hflip = true;
    model.save(&mirrored).unwrap();
    let val = held_out(40);
    let with_tta = evaluate::evaluate(&model, &val, 64).unwrap();

    let cli = |extra: &[&str]| -> String {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_doodle-model"))
            .args(["--quiet", "--threads", "1", "evaluate", "--model"])
            .arg(&mirrored)
            .arg("--data")
            .arg(train_dir())
            .arg("--categories")
            .arg(&cats)
            .args(["--limit", "40", "--val-fraction", "0.2", "--seed", "1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let first_line =
        |e: &doodle_model::evaluate::Evaluation| e.summary().lines().next().unwrap().to_string();
    // 40 drawings × 3 categories, 20 % held out = 24, exactly the run's own validation set.
    let plain = cli(&["--no-tta"]);
    assert!(plain.starts_with("24 drawings: "), "{plain}");
    assert_eq!(
        plain.lines().next().unwrap(),
        first_line(&report.validation)
    );
    let mirrored_out = cli(&[]);
    assert_eq!(mirrored_out.lines().next().unwrap(), first_line(&with_tta));

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_doodle-model"))
        .args(["--quiet", "evaluate", "--model"])
        .arg(&mirrored)
        .args(["--val-fraction", "1.5"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--val-fraction must be between 0 and 1")
    );
}

#[test]
fn a_short_time_budget_replans_the_run_before_the_first_epoch_ends() {
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(out.path().to_path_buf(), 200, 5);
    // 480 training drawings in batches of 32: 15 steps an epoch, timed after the first 8.
    opts.max_minutes = Some(0.001);
    let report = doodle_model::train(&opts).unwrap();
    assert_eq!(report.epochs.len(), 1, "one epoch fits at most");
    // Planned again for one epoch, the cosine reached its end within it; left at five epochs it
    // would still be near its peak (0.05) after 15 of 75 steps.
    let last_lr = report.epochs[0].lr;
    assert!(last_lr < 0.0025, "the rate was not re-planned: {last_lr}");
    assert!(Classifier::load(out.path()).is_ok());
}
