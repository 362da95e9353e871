//! A pipeline in a temp folder (config, data repository, local registry with the base model
//! deployed), the cached base model, and the stage binaries.
#![allow(dead_code)] // each test module uses its own share

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use doodle_core::config::Architecture;
use doodle_model::train::{Augment, Recipe};
use doodle_model::{Classifier, Dataset, TrainOptions};
use doodle_pipeline::protocol::StageOutput;
use doodle_registry::LocalRegistry;
use tempfile::TempDir;

/// The categories the base model knows, in its label order.
pub const BASE_CATEGORIES: [&str; 3] = ["apple", "bicycle", "rainbow"];
/// Drawings per category in the test's base data (the first ones of the shared files).
pub const BASE_ROWS: usize = 400;
/// The base model's validation split (reproduced by the evaluation set).
pub const BASE_VAL_FRACTION: f64 = 0.2;
pub const BASE_SEED: u64 = 1;
pub const MODEL_NAME: &str = "doodle-classifier";

/// Bumped whenever the cached model's recipe or data change.
const CACHE_VERSION: &str = "v1";

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// One libtorch thread: the test runner runs two tests side by side on two cores.
pub fn one_thread() {
    tch::set_num_threads(1);
}

/// The shared Quick, Draw! drawings (`../shared/data/quickdraw/train`).
pub fn quickdraw() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/quickdraw/train")
}

/// Rows `range` of a shared category, `n × 784` bytes.
pub fn shared_rows(category: &str, range: std::ops::Range<usize>) -> Vec<u8> {
    let all = doodle_model::data::read_npy(&quickdraw().join(format!("{category}.npy"))).unwrap();
    all[range.start * 784..range.end * 784].to_vec()
}

/// The cache: `<target>/retrain-test-model/<version>/{base/, model/}`.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/retrain-test-model")
        .join(CACHE_VERSION)
}

/// The test's base data: the first [`BASE_ROWS`] drawings of each base category.
pub fn base_data() -> PathBuf {
    base_model();
    cache_dir().join("base")
}

/// A resnet18 trained from scratch on [`base_data`] (2 epochs, about a minute on one thread),
/// made once and shared by every test (a file lock keeps two test processes from both
/// making it).
pub fn base_model() -> PathBuf {
    let root = cache_dir();
    let model = root.join("model");
    if model.join("metadata.json").is_file() {
        return model;
    }
    std::fs::create_dir_all(&root).unwrap();
    let lock = File::create(root.join(".lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !model.join("metadata.json").is_file() {
        build_base_model(&root, &model);
    }
    model
}

fn build_base_model(root: &Path, model: &Path) {
    let started = Instant::now();
    let base = root.join("base");
    std::fs::create_dir_all(&base).unwrap();
    for c in BASE_CATEGORIES {
        doodle_model::data::write_npy(
            &base.join(format!("{c}.npy")),
            &shared_rows(c, 0..BASE_ROWS),
        )
        .unwrap();
    }
    one_thread();
    let staging = root.join(format!(".model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    doodle_model::train(&TrainOptions {
        architecture: Architecture::Resnet18,
        data: vec![base],
        categories: names(&BASE_CATEGORIES),
        limit_per_class: None,
        val_fraction: BASE_VAL_FRACTION,
        seed: BASE_SEED,
        recipe: small_recipe(2),
        out_dir: staging.clone(),
        progress: false,
        max_minutes: None,
    })
    .unwrap();
    std::fs::rename(&staging, model).unwrap();
    eprintln!(
        "base model trained in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

pub fn small_recipe(epochs: usize) -> Recipe {
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

/// A pipeline in a temp folder with the base model registered as version 1 and deployed.
#[derive(Debug)]
pub struct Pipeline {
    pub dir: TempDir,
    pub config: PathBuf,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub registry_dir: PathBuf,
    pub logs: PathBuf,
    /// Where the backend saves drawings (`backend.img_data_location`).
    pub images: PathBuf,
    /// `pipeline_runs` (SQLite).
    pub database: String,
}

/// The test configuration's `[pipeline]` keys beyond the folders.
pub const PIPELINE_DEFAULTS: &str = "retrain_epochs = 2\nretrain_batch_size = 32\n\
    retrain_learning_rate = 0.05\neval_user_share = 0.25\nretrain_max_minutes = 5.0\n";

impl Pipeline {
    /// A local registry (`registry` = extra `[registry]` keys, e.g. MLflow's) and `pipeline`
    /// appended to `[pipeline]`; a data repository as stage 4 leaves it.
    pub fn new(registry: &str, pipeline: &str) -> Self {
        let p = Self::without_repo(registry, pipeline);
        p.init_repo();
        p
    }

    /// The same with no data repository yet: stage 4 makes it.
    pub fn without_repo(registry: &str, pipeline: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let p = Self {
            config: root.join("config.toml"),
            repo: root.join("repo"),
            state: root.join("state"),
            registry_dir: root.join("registry"),
            logs: root.join("logs"),
            images: root.join("img"),
            database: format!("sqlite://{}/runs.db?mode=rwc", root.display()),
            dir,
        };
        std::fs::write(root.join("categories.txt"), BASE_CATEGORIES.join("\n")).unwrap();
        let text = format!(
            "[telemetry]\nlog_dir = {logs:?}\n\n\
             [model]\narchitecture = \"resnet18\"\ndata_dir = {base:?}\n\
             categories_file = {cats:?}\nthreads = 1\n\n\
             [registry]\nlocal_dir = {reg:?}\n{registry}\n\n\
             [backend]\nimg_data_location = {img:?}\n\n\
             [database]\nurl = {db:?}\n\n\
             [pipeline]\ndata_repo = {repo:?}\nstate_dir = {state:?}\nquarantine_dir = {q:?}\n\
             {PIPELINE_DEFAULTS}{pipeline}\n",
            logs = p.logs,
            base = base_data(),
            cats = root.join("categories.txt"),
            reg = p.registry_dir,
            img = p.images,
            db = p.database,
            repo = p.repo,
            state = p.state,
            q = root.join("quarantine"),
        );
        std::fs::write(&p.config, text).unwrap();
        p
    }

    /// The local registry with the base model as version 1 behind `champion`.
    pub fn with_base_deployed(pipeline: &str) -> Self {
        let p = Self::new("", pipeline);
        let registry = p.local_registry();
        let v = registry.register(&base_model(), BTreeMap::new()).unwrap();
        registry
            .move_alias("champion", v.version, "test", "the base model")
            .unwrap();
        p
    }

    /// The configured registry (local or MLflow) with the base model registered as version 1
    /// and deployed behind `champion`.
    pub async fn deploy_base(&self) -> doodle_registry::Registry {
        let registry = doodle_registry::Registry::from_settings(&self.settings()).unwrap();
        let v1 = registry
            .register(&base_model(), &Default::default())
            .await
            .unwrap();
        registry
            .move_alias("champion", &v1, "test", "the base model")
            .await
            .unwrap();
        registry
    }

    pub fn local_registry(&self) -> LocalRegistry {
        LocalRegistry::new(&self.registry_dir, MODEL_NAME).unwrap()
    }

    pub fn settings(&self) -> doodle_core::Settings {
        doodle_core::Settings::load_from(Some(&self.config)).unwrap()
    }

    /// A git repository with a `drawings.dvc` as stage 4 leaves it (no DVC needed to read it).
    fn init_repo(&self) {
        std::fs::create_dir_all(self.repo.join("drawings/old")).unwrap();
        std::fs::create_dir_all(self.repo.join("drawings/new")).unwrap();
        self.git(&["init", "-q"]);
        self.git(&["config", "user.email", "test@doodle.invalid"]);
        self.git(&["config", "user.name", "test"]);
        self.version_data("0123456789abcdef0123456789abcdef.dir");
    }

    /// Commit a `drawings.dvc` naming `md5` (what stage 4 would do after `dvc add`).
    pub fn version_data(&self, md5: &str) {
        std::fs::write(
            self.repo.join("drawings.dvc"),
            format!("outs:\n- md5: {md5}\n  size: 1\n  nfiles: 1\n  hash: md5\n  path: drawings\n"),
        )
        .unwrap();
        self.git(&["add", "drawings.dvc"]);
        self.git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "Update tracked data in drawings",
        ]);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `<repo>/drawings/<which>/<category>.npy` with `rows`.
    pub fn user_drawings(&self, which: &str, category: &str, rows: &[u8]) {
        let path = self
            .repo
            .join("drawings")
            .join(which)
            .join(format!("{category}.npy"));
        doodle_model::data::write_npy(&path, rows).unwrap();
    }

    /// A stage binary on this pipeline, as run `run` of an orchestrator.
    pub fn stage(&self, bin: &str, run: i64) -> Command {
        let mut c = Command::new(bin);
        c.env("DOODLE_CONFIG", &self.config)
            .env("DOODLE_RUN_ID", run.to_string())
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path());
        c
    }

    /// Run a stage to its end; its result, or a panic with its output unless it succeeded.
    pub fn run_ok(&self, mut command: Command) -> (StageOutput, String) {
        let started = Instant::now();
        let out = command.output().unwrap();
        let text = text(&out);
        assert!(out.status.success(), "{command:?} failed:\n{text}");
        assert!(text.trim_end().ends_with("success"), "{text}");
        eprintln!(
            "{:?} took {:.1} s",
            command.get_program(),
            started.elapsed().as_secs_f64()
        );
        if std::env::var_os("RETRAIN_TEST_LOG").is_some() {
            eprintln!("{text}");
        }
        (result_of(&text), text)
    }

    pub fn candidates(&self) -> PathBuf {
        self.state.join("candidates")
    }
}

pub fn stage5() -> &'static str {
    env!("CARGO_BIN_EXE_stage5-retrain")
}

pub fn stage6() -> &'static str {
    env!("CARGO_BIN_EXE_stage6-register")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `result:` line of a stage's output.
pub fn result_of(text: &str) -> StageOutput {
    text.lines()
        .find_map(StageOutput::parse_line)
        .unwrap_or_else(|| panic!("no result line in:\n{text}"))
        .unwrap()
}

/// The drawings of `ds` as a set of their SHA-256s.
pub fn digests(ds: &Dataset) -> std::collections::HashSet<[u8; 32]> {
    doodle_retrain::retrain::digests(ds)
}

pub fn load(dir: &Path) -> Classifier {
    Classifier::load(dir).unwrap()
}
