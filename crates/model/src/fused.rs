//! An inference-only copy of a trained network, made for serving: every BatchNorm is folded
//! into the convolution before it (`w·γ/√(σ²+ε)`, bias `β − μ·γ/√(σ²+ε)`), and the stem's three
//! input channels — always the same drawing three times — are folded into one by summing the
//! first convolution's weights over them. The outputs are those of the eval-mode network up to
//! float rounding; the forward pass runs about a third fewer operators (no BatchNorm, in-place
//! ReLU and residual additions), which matters most at small batch sizes, where each operator's
//! fixed cost is a large share of the time (`docs/benchmarks.md`, "Model").
//!
//! The layout is tch's ResNet (`conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}`, `.bn{1,2,3}`,
//! `.downsample.{0,1}`, `fc`), read from the variable names, so any checkpoint that
//! [`crate::Classifier::load`] accepts can be folded.

use std::collections::HashMap;

use tch::Tensor;

use crate::ModelError;

/// BatchNorm's epsilon in tch's `batch_norm2d` default configuration.
const BN_EPS: f64 = 1e-5;

/// A detached copy of the variable `name`.
fn take(vars: &HashMap<String, Tensor>, name: &str) -> Result<Tensor, ModelError> {
    vars.get(name)
        .map(|t| t.detach().copy())
        .ok_or_else(|| ModelError::Options(format!("cannot fold the network: no `{name}`")))
}

/// A convolution with its BatchNorm folded in.
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn fold(
        vars: &HashMap<String, Tensor>,
        conv: &str,
        bn: &str,
        stride: i64,
        padding: i64,
    ) -> Result<Conv, ModelError> {
        let weight = take(vars, &format!("{conv}.weight"))?;
        let gamma = take(vars, &format!("{bn}.weight"))?;
        let beta = take(vars, &format!("{bn}.bias"))?;
        let mean = take(vars, &format!("{bn}.running_mean"))?;
        let var = take(vars, &format!("{bn}.running_var"))?;
        let scale = gamma / (var + BN_EPS).sqrt();
        let bias = beta - &mean * &scale;
        let weight = weight * scale.view([-1, 1, 1, 1]);
        Ok(Conv {
            weight,
            bias,
            stride,
            padding,
        })
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// A residual block: two (basic) or three (bottleneck) convolutions, ReLU between them, and an
/// optional downsampling convolution on the skip path.
#[derive(Debug)]
struct Block {
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

impl Block {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let mut ys = xs.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            ys = conv.forward(&ys);
            if i < last {
                let _ = ys.relu_();
            }
        }
        match &self.downsample {
            Some(d) => {
                let _ = ys.g_add_(&d.forward(xs));
            }
            None => {
                let _ = ys.g_add_(xs);
            }
        }
        let _ = ys.relu_();
        ys
    }
}

/// The folded network: 1×28×28 drawings in, logits out.
#[derive(Debug)]
pub struct FusedNetwork {
    stem: Conv,
    blocks: Vec<Block>,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl FusedNetwork {
    /// Fold the eval-mode network whose variables are `vars` (as `VarStore::variables` gives).
    pub fn fold(vars: &HashMap<String, Tensor>) -> Result<FusedNetwork, ModelError> {
        tch::no_grad(|| {
            let mut stem = Conv::fold(vars, "conv1", "bn1", 2, 3)?;
            stem.weight = stem.weight.sum_dim_intlist(1, true, tch::Kind::Float);
            let mut blocks = Vec::new();
            for layer in 1..=4 {
                for i in 0.. {
                    let p = format!("layer{layer}.{i}");
                    if !vars.contains_key(&format!("{p}.conv1.weight")) {
                        break;
                    }
                    // The first block of layers 2–4 halves the resolution.
                    let stride = if layer > 1 && i == 0 { 2 } else { 1 };
                    let convs = if vars.contains_key(&format!("{p}.conv3.weight")) {
                        // Bottleneck: 1×1, 3×3 (strided), 1×1.
                        vec![
                            Conv::fold(vars, &format!("{p}.conv1"), &format!("{p}.bn1"), 1, 0)?,
                            Conv::fold(
                                vars,
                                &format!("{p}.conv2"),
                                &format!("{p}.bn2"),
                                stride,
                                1,
                            )?,
                            Conv::fold(vars, &format!("{p}.conv3"), &format!("{p}.bn3"), 1, 0)?,
                        ]
                    } else {
                        // Basic: 3×3 (strided), 3×3.
                        vec![
                            Conv::fold(
                                vars,
                                &format!("{p}.conv1"),
                                &format!("{p}.bn1"),
                                stride,
                                1,
                            )?,
                            Conv::fold(vars, &format!("{p}.conv2"), &format!("{p}.bn2"), 1, 1)?,
                        ]
                    };
                    let downsample = if vars.contains_key(&format!("{p}.downsample.0.weight")) {
                        Some(Conv::fold(
                            vars,
                            &format!("{p}.downsample.0"),
                            &format!("{p}.downsample.1"),
                            stride,
                            0,
                        )?)
                    } else {
                        None
                    };
                    blocks.push(Block { convs, downsample });
                }
            }
            if blocks.is_empty() {
                return Err(ModelError::Options(
                    "cannot fold the network: it has no residual blocks".into(),
                ));
            }
            Ok(FusedNetwork {
                stem,
                blocks,
                fc_weight: take(vars, "fc.weight")?,
                fc_bias: take(vars, "fc.bias")?,
            })
        })
    }

    /// Logits of `n × 1 × 28 × 28` inputs (from [`crate::input::to_tensor`]). Call under
    /// `tch::no_grad`.
    pub fn logits(&self, xs: &Tensor) -> Tensor {
        let mut ys = self.stem.forward(xs);
        let _ = ys.relu_();
        let mut ys = ys.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in &self.blocks {
            ys = block.forward(&ys);
        }
        ys.adaptive_avg_pool2d([1, 1])
            .flat_view()
            .linear(&self.fc_weight, Some(&self.fc_bias))
    }
}
