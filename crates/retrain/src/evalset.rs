//! The fixed evaluation set: the drawings the gate judges both models on, which no candidate
//! ever trains on.
//!
//! **The rule.** A drawing is in the evaluation set when
//! 1. it is a base drawing (`model.data_dir`) that the lineage's first model — the one trained
//!    from scratch, whose descendants every candidate is — held out for validation: the
//!    validation part of exactly the split `doodle-model train` made (`Dataset::load` of the
//!    base folder with that model's categories and `limit_per_class`, then
//!    `Dataset::split(val_fraction, seed)`; reproduced from its metadata and checked against
//!    its data fingerprint), so the champion never trained on it either; or
//! 2. it is any other drawing — a user's (`old/`, `new/`), or a base drawing that split never
//!    covered (a category added to the base later, rows past the limit) — whose bytes hash
//!    into the share: the first 8 bytes of SHA-256 of its 784 bytes, read as a big-endian
//!    integer, are below `share × 2^64` (`pipeline.eval_user_share`, e.g. 0.1).
//!
//! Both parts depend only on the drawings themselves, never on file order or on which run saw
//! them first: a drawing is in the set forever or never. Every drawing whose bytes equal an
//! evaluation drawing's is kept out of the training pool too.
//!
//! **Where the rule comes from.** Stage 5 derives it from the deployed model
//! ([`EvalRule::for_champion`]): a model trained from scratch gives rule 1 from its own
//! metadata; a pipeline candidate carries the rule it was trained under (its metadata's
//! `training.evaluation_set`), so the held-out part stays the same across generations. A
//! deployed model whose training split is unknown (untrained, or fine-tuned outside the
//! pipeline) gets rule 2 for every drawing; it may have trained on some of them, which can only
//! flatter it, never the candidate. Stage 6 uses the rule the candidate recorded, so it judges
//! on exactly the drawings stage 5 kept out. Changing `eval_user_share` changes part 2 from the
//! next run on (drawings that move into the set may have trained the champion: again in its
//! favour only).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use doodle_core::Settings;
use doodle_model::{Dataset, IMAGE_PIXELS, Metadata};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Key under a checkpoint's `training` metadata where a candidate records its rule.
pub const RULE_KEY: &str = "evaluation_set";

/// Which drawings are evaluation drawings (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRule {
    /// Part 1: the base data's held-out split, when the lineage's first model's is known.
    pub held_out: Option<HeldOut>,
    /// Part 2: the share of the other drawings chosen by hash.
    pub user_share: f64,
}

/// The split `doodle-model train` made of the base data for the lineage's first model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// That model's categories, in its label order (the split depends on the order).
    pub categories: Vec<String>,
    pub limit_per_class: Option<usize>,
    pub val_fraction: f64,
    pub seed: u64,
    /// `Dataset::fingerprint` of the data it loaded (checked before the split is trusted).
    pub fingerprint: String,
}

impl EvalRule {
    /// The rule for candidates of `champion`, with part 2's share from the configuration.
    pub fn for_champion(champion: &Metadata, user_share: f64) -> anyhow::Result<EvalRule> {
        let held_out = match EvalRule::recorded(champion)? {
            Some(inherited) => inherited.held_out,
            None => held_out_of_first_model(champion),
        };
        if held_out.is_none() {
            tracing::warn!(
                "the deployed model's training split is unknown (not trained from scratch by \
                 doodle-model, nor by this pipeline): every evaluation drawing is chosen by hash"
            );
        }
        Ok(EvalRule {
            held_out,
            user_share,
        })
    }

    /// The rule a candidate recorded in its metadata, if it did.
    pub fn recorded(meta: &Metadata) -> anyhow::Result<Option<EvalRule>> {
        match meta.training.get(RULE_KEY) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .with_context(|| format!("the checkpoint's training.{RULE_KEY} is not a rule")),
        }
    }
}

/// Rule 1 for a model `doodle-model train` made (its `training` metadata says how it split).
fn held_out_of_first_model(meta: &Metadata) -> Option<HeldOut> {
    let t = &meta.training;
    if t.get("mode")?.as_str()? != "train" {
        return None;
    }
    Some(HeldOut {
        categories: meta.categories.clone(),
        limit_per_class: t
            .get("limit_per_class")
            .and_then(serde_json::Value::as_u64)
            .map(|n| n as usize),
        val_fraction: t.get("val_fraction")?.as_f64()?,
        seed: t.get("seed")?.as_u64()?,
        fingerprint: meta.data_fingerprint.clone(),
    })
}

/// Part 2 of the rule: whether a drawing's bytes hash into `share`.
pub fn hash_selected(drawing: &[u8], share: f64) -> bool {
    in_share(&Sha256::digest(drawing).into(), share)
}

fn in_share(digest: &[u8; 32], share: f64) -> bool {
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    // 2^64 × share, saturating: share 1.0 takes every drawing.
    let threshold = (share * 18_446_744_073_709_551_616.0) as u128;
    u128::from(head) < threshold
}

/// Where drawings come from: the base data (read-only) and the users' folders.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `model.data_dir`.
    pub base: PathBuf,
    /// `<data_repo>/<data_folder>/old` and `.../new`.
    pub user: Vec<PathBuf>,
}

impl Sources {
    pub fn new(settings: &Settings) -> Self {
        let dirs = doodle_pipeline::data::DataDirs::new(settings);
        Self {
            base: settings.model.data_dir.clone(),
            user: vec![dirs.old, dirs.new],
        }
    }
}

/// Every drawing of some categories, split into the evaluation set and the training pool.
#[derive(Debug, Clone)]
pub struct Split {
    /// The evaluation drawings, labelled in the order of the categories asked for.
    pub eval: Dataset,
    /// Every other drawing (no evaluation drawing's bytes among them).
    pub pool: Dataset,
    pub summary: SplitSummary,
}

/// Counts (and a fingerprint) of a [`Split`], for logs and reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub eval_drawings: usize,
    pub eval_base: usize,
    pub eval_user: usize,
    pub pool_drawings: usize,
    pub pool_base: usize,
    pub pool_user: usize,
    /// Drawings left out of the pool because an evaluation drawing has the same bytes.
    pub duplicates_excluded: usize,
    /// SHA-256 over the sorted (category, drawing hash) pairs of the evaluation set: the same
    /// drawings give the same fingerprint, whatever order the files hold them in.
    pub eval_fingerprint: String,
}

/// Load `categories` from the base data and the users' folders and split them by `rule`.
pub fn split(sources: &Sources, categories: &[String], rule: &EvalRule) -> anyhow::Result<Split> {
    let held = HeldOutRows::load(&sources.base, rule.held_out.as_ref())?;
    let mut builder = Builder::new(categories);
    for (label, category) in categories.iter().enumerate() {
        let base = held.base_rows(&sources.base, category)?;
        let flags = held.flags(category);
        for (i, row) in base.chunks_exact(IMAGE_PIXELS).enumerate() {
            let digest: [u8; 32] = Sha256::digest(row).into();
            let eval = match flags {
                Some(flags) if i < flags.len() => flags[i],
                _ => in_share(&digest, rule.user_share),
            };
            builder.push(label, row, digest, eval, Origin::Base);
        }
        for dir in &sources.user {
            for row in user_rows(dir, category)?.chunks_exact(IMAGE_PIXELS) {
                let digest: [u8; 32] = Sha256::digest(row).into();
                let eval = in_share(&digest, rule.user_share);
                builder.push(label, row, digest, eval, Origin::User);
            }
        }
    }
    Ok(builder.finish())
}

/// The lineage's first model's split of the base data, reproduced.
#[derive(Debug, Default)]
struct HeldOutRows {
    /// Every base drawing of the split's categories (no limit), class by class.
    full: Option<Dataset>,
    /// Per category: for each of the first `limit` rows, whether it is held out.
    flags: BTreeMap<String, Vec<bool>>,
}

impl HeldOutRows {
    fn load(base: &Path, held_out: Option<&HeldOut>) -> anyhow::Result<Self> {
        let Some(h) = held_out else {
            return Ok(Self::default());
        };
        let full = Dataset::load(&[base.to_path_buf()], &h.categories, None)
            .with_context(|| format!("loading the base data {}", base.display()))?;
        let ranges = class_ranges(&full);
        let covered: Vec<usize> = ranges
            .iter()
            .flat_map(|r| r.start..r.start + h.limit_per_class.map_or(r.len(), |l| l.min(r.len())))
            .collect();
        let first = full.subset(&covered);
        if first.fingerprint() != h.fingerprint {
            bail!(
                "cannot reproduce the held-out split of the lineage's first model: {} with its {} \
                 categories (limit {:?}) has fingerprint {}, but the model was trained on data \
                 with fingerprint {}; point model.data_dir at the data it was trained on",
                base.display(),
                h.categories.len(),
                h.limit_per_class,
                first.fingerprint(),
                h.fingerprint
            );
        }
        let (_, val) = first.split_indices(h.val_fraction, h.seed);
        let mut is_val = vec![false; first.len()];
        for i in val {
            is_val[i] = true;
        }
        let mut flags = BTreeMap::new();
        let mut at = 0;
        for (category, range) in h.categories.iter().zip(&ranges) {
            let n = h
                .limit_per_class
                .map_or(range.len(), |l| l.min(range.len()));
            flags.insert(category.clone(), is_val[at..at + n].to_vec());
            at += n;
        }
        Ok(Self {
            full: Some(full),
            flags,
        })
    }

    fn flags(&self, category: &str) -> Option<&[bool]> {
        self.flags.get(category).map(Vec::as_slice)
    }

    /// Every base drawing of `category` (none when the base data has no such category).
    fn base_rows(&self, base: &Path, category: &str) -> anyhow::Result<Vec<u8>> {
        if let Some(full) = &self.full
            && let Some(label) = full.categories.iter().position(|c| c == category)
        {
            let range = &class_ranges(full)[label];
            return Ok(full.pixels[range.start * IMAGE_PIXELS..range.end * IMAGE_PIXELS].to_vec());
        }
        let has_npy = base.join(format!("{category}.npy")).is_file();
        if !has_npy && !base.join(category).is_dir() {
            return Ok(Vec::new());
        }
        let one = [category.to_string()];
        let ds = Dataset::load(&[base.to_path_buf()], &one, None)
            .with_context(|| format!("loading {category} from {}", base.display()))?;
        Ok(ds.pixels)
    }
}

/// Each label's index range in a dataset whose labels come class by class (`Dataset::load`).
fn class_ranges(ds: &Dataset) -> Vec<std::ops::Range<usize>> {
    let counts = ds.class_counts();
    let mut start = 0;
    counts
        .iter()
        .map(|n| {
            let r = start..start + n;
            start += n;
            r
        })
        .collect()
}

/// The drawings of `<dir>/<category>.npy` (none when there is no such file).
fn user_rows(dir: &Path, category: &str) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(format!("{category}.npy"));
    if !path.is_file() {
        return Ok(Vec::new());
    }
    Ok(doodle_model::data::read_npy(&path)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Base,
    User,
}

/// Collects the evaluation set and the pool's candidates, then drops duplicates of evaluation
/// drawings from the pool.
struct Builder {
    eval: Dataset,
    pool: Vec<(i64, [u8; 32], Origin, Vec<u8>)>,
    eval_keys: Vec<(String, [u8; 32])>,
    eval_hashes: HashSet<[u8; 32]>,
    summary: SplitSummary,
}

impl Builder {
    fn new(categories: &[String]) -> Self {
        Self {
            eval: Dataset {
                categories: categories.to_vec(),
                ..Dataset::default()
            },
            pool: Vec::new(),
            eval_keys: Vec::new(),
            eval_hashes: HashSet::new(),
            summary: SplitSummary::default(),
        }
    }

    fn push(&mut self, label: usize, row: &[u8], digest: [u8; 32], eval: bool, origin: Origin) {
        if !eval {
            self.pool.push((label as i64, digest, origin, row.to_vec()));
            return;
        }
        self.eval.push_rows(label as i64, row);
        let category = self.eval.categories[label].clone();
        self.eval_keys.push((category, digest));
        self.eval_hashes.insert(digest);
        match origin {
            Origin::Base => self.summary.eval_base += 1,
            Origin::User => self.summary.eval_user += 1,
        }
    }

    fn finish(mut self) -> Split {
        let mut pool = Dataset {
            categories: self.eval.categories.clone(),
            ..Dataset::default()
        };
        for (label, digest, origin, row) in &self.pool {
            if self.eval_hashes.contains(digest) {
                self.summary.duplicates_excluded += 1;
                continue;
            }
            pool.push_rows(*label, row);
            match origin {
                Origin::Base => self.summary.pool_base += 1,
                Origin::User => self.summary.pool_user += 1,
            }
        }
        self.eval_keys.sort();
        let mut h = Sha256::new();
        for (category, digest) in &self.eval_keys {
            h.update(category.as_bytes());
            h.update([0]);
            h.update(digest);
        }
        self.summary.eval_drawings = self.eval.len();
        self.summary.pool_drawings = pool.len();
        self.summary.eval_fingerprint = format!("sha256:{}", hex(&h.finalize()));
        Split {
            eval: self.eval,
            pool,
            summary: self.summary,
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_share_takes_about_that_share_and_always_the_same_drawings() {
        let drawings: Vec<Vec<u8>> = (0..4000u32)
            .map(|i| {
                let mut d = vec![0u8; IMAGE_PIXELS];
                d[..4].copy_from_slice(&i.to_le_bytes());
                d
            })
            .collect();
        let chosen: Vec<bool> = drawings.iter().map(|d| hash_selected(d, 0.1)).collect();
        let n = chosen.iter().filter(|c| **c).count();
        assert!((300..500).contains(&n), "{n} of 4000 at share 0.1");
        let again: Vec<bool> = drawings.iter().map(|d| hash_selected(d, 0.1)).collect();
        assert_eq!(chosen, again);
        assert!(drawings.iter().all(|d| hash_selected(d, 1.0)));
        assert!(!drawings.iter().any(|d| hash_selected(d, 0.0)));
        // A larger share keeps every drawing a smaller one chose.
        assert!(
            drawings
                .iter()
                .filter(|d| hash_selected(d, 0.1))
                .all(|d| hash_selected(d, 0.2))
        );
    }
}
