//! Checkpoints: a directory holding `model.safetensors` (every variable of the network, tch
//! names, BatchNorm running statistics included) and `metadata.json` ([`Metadata`]).
//!
//! Loading checks the metadata against the weights — architecture, stem, number of categories,
//! and every tensor's name and shape — and refuses a mismatch with a message naming the file.

use std::collections::BTreeMap;
use std::path::Path;

use doodle_core::config::Architecture;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::fused::FusedNetwork;
use crate::net::{self, Network};
use crate::{IMAGE_PIXELS, ModelError, input};

/// File names inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const METADATA_FILE: &str = "metadata.json";
/// Bumped when the checkpoint layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Everything needed to use and trust a set of weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub format_version: u32,
    /// `"resnet50"` or `"resnet18"`.
    pub architecture: String,
    /// See [`net::STEM`].
    pub stem: String,
    /// Category names in label order: row `i` of the output is `categories[i]`.
    pub categories: Vec<String>,
    /// See [`net::INPUT_CONVENTION`].
    pub input: String,
    /// Average the prediction with that of the left–right mirrored drawing (test-time
    /// augmentation); `predict_proba` honours it.
    #[serde(default)]
    pub tta_hflip: bool,
    /// The options the weights were trained with (free-form, for people and lineage).
    pub training: serde_json::Value,
    /// Top-1 and top-3 accuracy on the held-out validation split, if trained.
    pub val_accuracy: Option<f64>,
    pub val_top3: Option<f64>,
    /// Validation top-1 per category, in category order, if trained.
    #[serde(default)]
    pub val_per_class: Option<Vec<f64>>,
    /// [`crate::Dataset::fingerprint`] of the training data (train and validation together).
    pub data_fingerprint: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Crate, tch and libtorch versions that wrote it.
    pub versions: serde_json::Value,
    /// The checkpoint this one was fine-tuned from, if any.
    #[serde(default)]
    pub parent: Option<String>,
}

impl Metadata {
    /// A metadata record for a fresh network; the training fields are filled in by the caller.
    pub fn new(arch: Architecture, categories: &[String]) -> Metadata {
        Metadata {
            format_version: FORMAT_VERSION,
            architecture: net::architecture_name(arch).to_string(),
            stem: net::STEM.to_string(),
            categories: categories.to_vec(),
            input: net::INPUT_CONVENTION.to_string(),
            tta_hflip: false,
            training: serde_json::Value::Null,
            val_accuracy: None,
            val_top3: None,
            val_per_class: None,
            data_fingerprint: String::new(),
            created_at: now_rfc3339(),
            versions: versions(),
            parent: None,
        }
    }

    /// The architecture, if it is one this crate builds.
    pub fn parsed_architecture(&self) -> Option<Architecture> {
        net::parse_architecture(&self.architecture)
    }
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn versions() -> serde_json::Value {
    serde_json::json!({
        "doodle-model": env!("CARGO_PKG_VERSION"),
        "tch": "0.26",
        "libtorch": "2.13.0",
    })
}

/// An eval-mode network on the CPU with its metadata. `Send`: it may be moved to a dedicated
/// inference thread.
#[derive(Debug)]
pub struct Classifier {
    pub(crate) vs: nn::VarStore,
    pub(crate) net: Network,
    pub(crate) metadata: Metadata,
    /// The BatchNorm-folded copy that serves predictions once [`Classifier::fuse`] made it.
    pub(crate) fused: Option<FusedNetwork>,
}

impl Classifier {
    /// A freshly initialised network (libtorch's global generator; seed it with
    /// `tch::manual_seed` for reproducible weights).
    pub fn new_untrained(
        arch: Architecture,
        categories: &[String],
    ) -> Result<Classifier, ModelError> {
        if categories.is_empty() {
            return Err(ModelError::Options(
                "a classifier needs at least one category".into(),
            ));
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), arch, categories.len() as i64);
        Ok(Classifier {
            vs,
            net,
            metadata: Metadata::new(arch, categories),
            fused: None,
        })
    }

    /// Load a checkpoint directory (`model.safetensors` + `metadata.json`), checking the
    /// metadata against the weights.
    pub fn load(dir: &Path) -> Result<Classifier, ModelError> {
        let meta_path = dir.join(METADATA_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        let text =
            std::fs::read_to_string(&meta_path).map_err(|e| ModelError::io(&meta_path, e))?;
        let metadata: Metadata = serde_json::from_str(&text)
            .map_err(|e| ModelError::checkpoint(&meta_path, format!("invalid metadata: {e}")))?;
        if metadata.format_version != FORMAT_VERSION {
            return Err(ModelError::checkpoint(
                &meta_path,
                format!(
                    "format version {} is not the supported {FORMAT_VERSION}",
                    metadata.format_version
                ),
            ));
        }
        let arch = metadata.parsed_architecture().ok_or_else(|| {
            ModelError::checkpoint(
                &meta_path,
                format!(
                    "unknown architecture `{}` (expected resnet18 or resnet50)",
                    metadata.architecture
                ),
            )
        })?;
        if metadata.stem != net::STEM {
            return Err(ModelError::checkpoint(
                &meta_path,
                format!(
                    "stem `{}` is not the supported `{}`",
                    metadata.stem,
                    net::STEM
                ),
            ));
        }
        let mut classifier = Classifier::new_untrained(arch, &metadata.categories)
            .map_err(|e| ModelError::checkpoint(&meta_path, e.to_string()))?;
        classifier.metadata = metadata;
        classifier.load_weights(&weights_path)?;
        Ok(classifier)
    }

    /// Copy the weights of `path` into this network after checking that names and shapes match
    /// exactly (tch's own `VarStore::load` would broadcast a `1×F` tensor into `C×F`).
    fn load_weights(&mut self, path: &Path) -> Result<(), ModelError> {
        if !path.is_file() {
            return Err(ModelError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            ));
        }
        let stored: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| ModelError::checkpoint(path, format!("unreadable safetensors: {e}")))?
            .into_iter()
            .collect();
        // Sorted, like `stored`: the same bad checkpoint always gets the same message.
        let mut vars: BTreeMap<String, Tensor> = self.vs.variables().into_iter().collect();
        let categories = self.metadata.categories.len();
        if let Some(fc) = stored.get("fc.weight") {
            let rows = fc.size()[0];
            if rows != categories as i64 {
                return Err(ModelError::checkpoint(
                    path,
                    format!(
                        "the final layer has {rows} outputs but the metadata lists {categories} categories"
                    ),
                ));
            }
        }
        let extra: Vec<&String> = stored.keys().filter(|k| !vars.contains_key(*k)).collect();
        if !extra.is_empty() {
            return Err(ModelError::checkpoint(
                path,
                format!(
                    "{} tensors the {} network does not have (first: `{}`): wrong architecture?",
                    extra.len(),
                    self.metadata.architecture,
                    extra[0]
                ),
            ));
        }
        // Every name is checked before any shape.
        let missing: Vec<&String> = vars.keys().filter(|k| !stored.contains_key(*k)).collect();
        if let Some(first) = missing.first() {
            return Err(ModelError::checkpoint(
                path,
                format!(
                    "{} tensors of the {} network are missing (first: `{first}`): wrong architecture?",
                    missing.len(),
                    self.metadata.architecture
                ),
            ));
        }
        tch::no_grad(|| -> Result<(), ModelError> {
            for (name, var) in vars.iter_mut() {
                let src = &stored[name];
                if src.size() != var.size() {
                    return Err(ModelError::checkpoint(
                        path,
                        format!(
                            "tensor `{name}` has shape {:?}, the {} network needs {:?}: wrong architecture?",
                            src.size(),
                            self.metadata.architecture,
                            var.size()
                        ),
                    ));
                }
                var.f_copy_(&src.to_kind(var.kind()))?;
            }
            Ok(())
        })
    }

    /// Write `model.safetensors` and `metadata.json` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        write_checkpoint(&self.vs, &self.metadata, dir)
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    pub fn categories(&self) -> &[String] {
        &self.metadata.categories
    }

    /// Start each residual block as the identity (see [`Network::zero_init_residual`]); for a
    /// network about to be trained from scratch. Returns how many BatchNorm scales were zeroed.
    pub fn zero_init_residual(&mut self) -> usize {
        self.fused = None;
        self.net.zero_init_residual(&self.vs)
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Softmax probabilities, `n × C` row-major, for `pixels` = `n × 784` bytes (0 = background,
    /// 255 = ink). Eval mode, no gradients.
    pub fn predict_proba(&self, pixels: &[u8]) -> Result<Vec<f32>, ModelError> {
        let probs = self.proba_tensor(&input_tensor(pixels)?);
        Ok(Vec::<f32>::try_from(probs.flatten(0, -1))?)
    }

    /// Probabilities of an `n × 1 × 28 × 28` input tensor (eval mode, no gradients, TTA as the
    /// metadata says).
    pub fn proba_tensor(&self, xs: &Tensor) -> Tensor {
        let hflip = self.metadata.tta_hflip;
        tch::no_grad(|| match &self.fused {
            Some(fused) => softmax_tta(|x| fused.logits(x), xs, hflip),
            None => probabilities(&self.net, xs, hflip),
        })
    }

    /// Serve predictions from a copy of the network with its BatchNorm layers folded into the
    /// convolutions ([`crate::fused`]): the same outputs up to float rounding, fewer operators.
    /// For a model that will not be trained any further (the copy does not follow the weights).
    pub fn fuse(&mut self) -> Result<(), ModelError> {
        self.fuse_split(1)
    }

    /// [`Classifier::fuse`], and compute each batch of two or more images as up to `slices`
    /// slices side by side, each on its own thread with one libtorch thread
    /// ([`FusedNetwork::split_across`]; call `tch::set_num_threads(1)` on the predicting
    /// thread too).
    pub fn fuse_split(&mut self, slices: usize) -> Result<(), ModelError> {
        self.fused = Some(FusedNetwork::fold(&self.vs.variables())?.split_across(slices)?);
        Ok(())
    }

    /// How many slices a batch is split into at most: 1 unless [`Classifier::fuse_split`]
    /// asked for more.
    pub fn forward_slices(&self) -> usize {
        self.fused.as_ref().map_or(1, FusedNetwork::slices)
    }

    /// Another handle to the folded copy's weights ([`Classifier::fuse`] first) that predicts
    /// on another thread, at the same time as this classifier and other handles, with no copy.
    pub fn predictor(&self) -> Result<Predictor, ModelError> {
        let fused = self.fused.as_ref().ok_or_else(|| {
            ModelError::Options("only a folded classifier hands out predictors".into())
        })?;
        Ok(Predictor {
            fused: fused.handle()?,
            hflip: self.metadata.tta_hflip,
        })
    }

    /// Whether [`Classifier::fuse`] has been called.
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// The same network with its final layer resized for `categories`: rows of categories that
    /// already existed are copied bit for bit (by name, wherever they now sit); new categories
    /// get freshly initialised rows. Everything else is copied as is.
    pub fn with_categories(&self, categories: &[String]) -> Result<Classifier, ModelError> {
        let arch = self.net.architecture();
        let mut fresh = Classifier::new_untrained(arch, categories)?;
        let old_vars = self.vs.variables();
        let mut new_vars = fresh.vs.variables();
        tch::no_grad(|| -> Result<(), ModelError> {
            for (name, var) in new_vars.iter_mut() {
                if name == "fc.weight" || name == "fc.bias" {
                    continue;
                }
                var.f_copy_(&old_vars[name])?;
            }
            let (old_w, old_b) = (&self.net.fc().ws, self.net.fc().bs.as_ref());
            let (new_w, new_b) = (&fresh.net.fc().ws, fresh.net.fc().bs.as_ref());
            for (j, cat) in categories.iter().enumerate() {
                if let Some(i) = self.metadata.categories.iter().position(|c| c == cat) {
                    new_w.get(j as i64).f_copy_(&old_w.get(i as i64))?;
                    if let (Some(nb), Some(ob)) = (new_b, old_b) {
                        nb.get(j as i64).f_copy_(&ob.get(i as i64))?;
                    }
                }
            }
            Ok(())
        })?;
        fresh.metadata = Metadata {
            categories: categories.to_vec(),
            created_at: now_rfc3339(),
            versions: versions(),
            val_accuracy: None,
            val_top3: None,
            val_per_class: None,
            ..self.metadata.clone()
        };
        Ok(fresh)
    }
}

/// Write a checkpoint directory from a variable store and its metadata.
pub(crate) fn write_checkpoint(
    vs: &nn::VarStore,
    metadata: &Metadata,
    dir: &Path,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    // Each file is written beside its final name, synced, then renamed over it: a run killed
    // mid-write leaves the previous checkpoint whole. Weights go first, so the metadata never
    // describes weights that are not on disk.
    let weights = dir.join(WEIGHTS_FILE);
    write_through_temp(&weights, |tmp| {
        vs.save(tmp)
            .map_err(|e| ModelError::checkpoint(&weights, format!("cannot write weights: {e}")))
    })?;
    let meta = dir.join(METADATA_FILE);
    let json = serde_json::to_string_pretty(metadata).expect("metadata serialises. This is a bug.");
    write_atomic(&meta, (json + "\n").as_bytes())
}

/// Write `bytes` to `path` through a synced temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    write_through_temp(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| ModelError::io(tmp, e))
    })
}

/// Let `write` fill a temporary file beside `path` (same extension, so `VarStore::save` picks
/// the same format), sync it and rename it over `path`; on failure the temporary file is
/// removed and `path` is left as it was.
fn write_through_temp(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".partial-{}-{name}", std::process::id()));
    let written = write(&tmp)
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| ModelError::io(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A thread's own handle to a folded classifier's weights ([`Classifier::predictor`]).
#[derive(Debug)]
pub struct Predictor {
    fused: FusedNetwork,
    hflip: bool,
}

impl Predictor {
    /// [`Classifier::predict_proba`], computed in at most `slices` slices side by side (1: on
    /// the calling thread alone; see [`FusedNetwork::split_across`]).
    pub fn predict_proba(&self, pixels: &[u8], slices: usize) -> Result<Vec<f32>, ModelError> {
        let xs = input_tensor(pixels)?;
        let probs =
            tch::no_grad(|| softmax_tta(|x| self.fused.logits_in(x, slices), &xs, self.hflip));
        Ok(Vec::<f32>::try_from(probs.flatten(0, -1))?)
    }

    /// How many slices a pass may be split into.
    pub fn slices(&self) -> usize {
        self.fused.slices()
    }
}

/// `n × 784` drawing bytes as the network's input, or why they are not.
fn input_tensor(pixels: &[u8]) -> Result<Tensor, ModelError> {
    if pixels.is_empty() {
        return Err(ModelError::Input("no drawings given".into()));
    }
    if !pixels.len().is_multiple_of(IMAGE_PIXELS) {
        return Err(ModelError::Input(format!(
            "{} bytes is not a whole number of 784-byte drawings",
            pixels.len()
        )));
    }
    Ok(input::to_tensor(pixels))
}

/// Softmax of the logits, averaged with the mirrored input's when `hflip` is set (both in one
/// forward pass of twice the batch: cheaper than two passes at small batch sizes).
pub(crate) fn probabilities(net: &Network, xs: &Tensor, hflip: bool) -> Tensor {
    softmax_tta(|x| net.logits(x, false), xs, hflip)
}

fn softmax_tta(logits: impl Fn(&Tensor) -> Tensor, xs: &Tensor, hflip: bool) -> Tensor {
    if hflip {
        let n = xs.size()[0];
        let both = Tensor::cat(&[xs.shallow_clone(), xs.flip([3])], 0);
        let p = logits(&both).softmax(-1, Kind::Float);
        (p.narrow(0, 0, n) + p.narrow(0, n, n)) / 2.0
    } else {
        logits(xs).softmax(-1, Kind::Float)
    }
}

/// Build a freshly initialised network (libtorch seeded with `seed`) for `categories` and save
/// it as a checkpoint directory: "a small model" for other crates' tests, in seconds.
pub fn save_untrained(
    dir: &Path,
    arch: Architecture,
    categories: &[String],
    seed: i64,
) -> Result<(), ModelError> {
    tch::manual_seed(seed);
    let mut c = Classifier::new_untrained(arch, categories)?;
    c.metadata.training = serde_json::json!({ "untrained": true, "seed": seed });
    c.metadata.data_fingerprint = "none (untrained)".into();
    c.save(dir)
}
