//! The network: tch's own ResNet (so variable names — `conv1`, `bn1`, `layer1.0.conv1`, …, `fc` —
//! stay interchangeable with any tch/torchvision ResNet) with the stock 7×7/2 stem and max-pool,
//! fed the 1×28×28 drawing expanded to 3 channels.
//!
//! Why this stem: `docs/benchmarks.md` ("Model") and protocols §6 — it costs 0.16 GFLOP per image
//! (ResNet50), 13× less than a stride-1 stem, which would miss the model server's latency target
//! and make a full training run take hours on two cores.

use doodle_core::config::Architecture;
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Recorded in the checkpoint metadata; a checkpoint with another stem is refused.
pub const STEM: &str = "stock-7x7s2-maxpool-input-x3";

/// The input convention, recorded in the metadata (see [`crate::input::to_tensor`]).
pub const INPUT_CONVENTION: &str =
    "784 u8 row-major 28x28, 0 = background, 255 = ink; scaled to 0..1, repeated to 3 channels";

/// The architecture's name in configuration and metadata.
pub fn architecture_name(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Resnet18 => "resnet18",
        Architecture::Resnet50 => "resnet50",
    }
}

/// Parse an architecture name as written by [`architecture_name`].
pub fn parse_architecture(name: &str) -> Option<Architecture> {
    match name {
        "resnet18" => Some(Architecture::Resnet18),
        "resnet50" => Some(Architecture::Resnet50),
        _ => None,
    }
}

/// Width of the pooled features that feed the final layer.
pub fn feature_width(arch: Architecture) -> i64 {
    match arch {
        Architecture::Resnet18 => 512,
        Architecture::Resnet50 => 2048,
    }
}

/// A ResNet body plus its final layer `fc`, kept apart so fine-tuning can replace or train
/// only `fc`.
#[derive(Debug)]
pub struct Network {
    body: Box<dyn ModuleT>,
    fc: nn::Linear,
    arch: Architecture,
    classes: i64,
}

impl Network {
    /// Create the variables under `root` (freshly initialised).
    pub fn new(root: &nn::Path, arch: Architecture, classes: i64) -> Network {
        let body: Box<dyn ModuleT> = match arch {
            Architecture::Resnet18 => Box::new(tch::vision::resnet::resnet18_no_final_layer(root)),
            Architecture::Resnet50 => Box::new(tch::vision::resnet::resnet50_no_final_layer(root)),
        };
        let fc = nn::linear(
            root / "fc",
            feature_width(arch),
            classes,
            Default::default(),
        );
        Network {
            body,
            fc,
            arch,
            classes,
        }
    }

    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    pub fn classes(&self) -> i64 {
        self.classes
    }

    /// The final layer (weight `classes × features`, bias `classes`).
    pub fn fc(&self) -> &nn::Linear {
        &self.fc
    }

    /// Pooled features of `n × 1 × 28 × 28` inputs (from [`crate::input::to_tensor`]).
    pub fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        let n = xs.size()[0];
        self.body
            .forward_t(&xs.expand([n, 3, -1, -1], false), train)
    }

    /// Logits from pooled features.
    pub fn head(&self, features: &Tensor) -> Tensor {
        features.apply(&self.fc)
    }

    /// Zero the scale of each residual block's last BatchNorm (`bn3` of a bottleneck, `bn2` of
    /// a basic block), so every block starts as the identity: the standard stabiliser for
    /// training a ResNet from scratch at a high learning rate. Returns how many were zeroed.
    pub fn zero_init_residual(&self, vs: &nn::VarStore) -> usize {
        let last = match self.arch {
            Architecture::Resnet18 => ".bn2.weight",
            Architecture::Resnet50 => ".bn3.weight",
        };
        let mut zeroed = 0;
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                if name.starts_with("layer") && name.ends_with(last) {
                    let _ = t.shallow_clone().zero_();
                    zeroed += 1;
                }
            }
        });
        zeroed
    }

    /// Logits of `n × 1 × 28 × 28` inputs.
    pub fn logits(&self, xs: &Tensor, train: bool) -> Tensor {
        self.head(&self.features(xs, train))
    }
}
