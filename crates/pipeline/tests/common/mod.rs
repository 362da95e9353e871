//! A pipeline's folders in a temp dir, a config naming them, and the real stage binaries.
#![allow(dead_code)] // each test binary uses its own share of these helpers

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use doodle_core::image::{PIXELS, Pixels, png_from_pixels};
use tempfile::TempDir;

/// The project's DVC (scripts/setup-mlflow.sh installs it; `make test` runs that first).
pub fn dvc() -> PathBuf {
    let dvc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/dvc");
    assert!(
        dvc.is_file(),
        "{} is missing: run scripts/setup-mlflow.sh (make test does)",
        dvc.display()
    );
    dvc
}

#[derive(Debug)]
pub struct Pipeline {
    pub dir: TempDir,
    pub config: PathBuf,
    pub images: PathBuf,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub quarantine: PathBuf,
    pub logs: PathBuf,
}

impl Pipeline {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// `extra` is appended to the `[pipeline]` table.
    pub fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let p = Self {
            config: root.join("config.toml"),
            images: root.join("img"),
            repo: root.join("repo"),
            state: root.join("state"),
            quarantine: root.join("quarantine"),
            logs: root.join("logs"),
            dir,
        };
        let text = format!(
            "[telemetry]\nlog_dir = {logs:?}\n\n[backend]\nimg_data_location = {img:?}\n\n\
             [database]\nurl = \"sqlite://{root}/runs.db?mode=rwc\"\n\n\
             [pipeline]\ndata_repo = {repo:?}\nstate_dir = {state:?}\nquarantine_dir = {q:?}\n\
             dvc_command = {dvc:?}\n{extra}\n",
            logs = p.logs,
            img = p.images,
            root = root.display(),
            repo = p.repo,
            state = p.state,
            q = p.quarantine,
            dvc = dvc(),
        );
        std::fs::write(&p.config, text).unwrap();
        p
    }

    pub fn data(&self, which: &str) -> PathBuf {
        self.repo.join("drawings").join(which)
    }

    /// A stage binary (`stage3-convert`, ...) set up to run on this pipeline.
    pub fn command(&self, bin_path: &str) -> Command {
        let mut c = Command::new(bin_path);
        c.env("DOODLE_CONFIG", &self.config)
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path());
        c
    }

    /// Run a stage to its end; panics with its output unless it succeeded.
    pub fn run_ok(&self, bin_path: &str) -> String {
        let out = self.command(bin_path).output().unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "{bin_path} failed:\n{text}");
        assert!(text.trim_end().ends_with("success"), "{text}");
        text
    }

    /// Save a drawing as the backend does: a PNG under a fresh name, written temp + rename.
    pub fn save(&self, category: &str, pixels: &Pixels) -> PathBuf {
        let folder = self.images.join(category);
        std::fs::create_dir_all(&folder).unwrap();
        let tmp = folder.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, png_from_pixels(pixels)).unwrap();
        let path = folder.join(format!("{}.png", uuid::Uuid::now_v7()));
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// Every drawing the pipeline holds, by category: rows of old/ and new/ plus PNGs waiting.
    pub fn everything(&self) -> BTreeMap<String, Vec<Pixels>> {
        let mut all: BTreeMap<String, Vec<Pixels>> = BTreeMap::new();
        for which in ["old", "new"] {
            for (cat, rows) in read_npy_dir(&self.data(which)) {
                all.entry(cat).or_default().extend(rows);
            }
        }
        for (cat, rows) in read_png_dirs(&self.images) {
            all.entry(cat).or_default().extend(rows);
        }
        all
    }
}

pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A drawing that carries its id in its first four bytes, ink inside a dark border (so the
/// PNG conversion keeps it as it is).
pub fn drawing(id: u32) -> Pixels {
    let mut p = [0u8; PIXELS];
    p[..4].copy_from_slice(&id.to_le_bytes());
    for y in 4..24 {
        for x in 4..24 {
            p[y * 28 + x] = ((x * 31 + y * 17) as u32).wrapping_add(id.wrapping_mul(7)) as u8;
        }
    }
    p
}

pub fn id_of(p: &Pixels) -> u32 {
    u32::from_le_bytes(p[..4].try_into().unwrap())
}

/// `<category>.npy` files of a folder, read with npyz (an independent reader).
pub fn read_npy_dir(dir: &Path) -> BTreeMap<String, Vec<Pixels>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(cat) = name.strip_suffix(".npy") else {
            continue;
        };
        out.insert(cat.to_string(), read_npy(&path));
    }
    out
}

pub fn read_npy(path: &Path) -> Vec<Pixels> {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape()[1], PIXELS as u64, "{}", path.display());
    let data: Vec<u8> = npy.into_vec().unwrap();
    data.chunks(PIXELS).map(|c| c.try_into().unwrap()).collect()
}

/// PNGs still waiting, decoded.
pub fn read_png_dirs(root: &Path) -> BTreeMap<String, Vec<Pixels>> {
    let mut out: BTreeMap<String, Vec<Pixels>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries {
        let dir = entry.unwrap().path();
        if !dir.is_dir() || dir.is_symlink() {
            continue;
        }
        let cat = dir.file_name().unwrap().to_string_lossy().to_string();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|x| x == "png") {
                let bytes = std::fs::read(&file).unwrap();
                let px = doodle_core::image::pixels_from_png(&bytes).unwrap();
                out.entry(cat.clone()).or_default().push(px);
            }
        }
    }
    out
}

/// A small seeded generator (xorshift64*), so a failing random test can be replayed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
