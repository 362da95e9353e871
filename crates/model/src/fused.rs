//! An inference-only copy of a trained network, made for serving. Three rewrites, each exact up
//! to float rounding:
//!
//! 1. **BatchNorm folded** into the convolution before it (`w·γ/√(σ²+ε)`, bias
//!    `β − μ·γ/√(σ²+ε)`), and the stem's three input channels — always the same drawing three
//!    times — folded into one by summing the first convolution's weights over them.
//! 2. **Channels-last convolutions** while the feature maps are large: weights (and so
//!    activations) are laid out NHWC, the layout oneDNN's CPU convolutions run natively.
//! 3. **The small-map tail as matrix products.** A 28×28 drawing leaves ResNet's third stage at
//!    2×2 and its fourth at 1×1. There a 3×3 convolution mostly multiplies padding: at 1×1 only
//!    its centre tap ever meets data. From the first block whose input is at most
//!    [`TAIL_SIDE`]×[`TAIL_SIDE`] on, activations are kept as rows of `[positions × channels]`
//!    and every convolution becomes one GEMM: a 1×1 convolution multiplies each position's
//!    channels by `[Co × Ci]` ([`TailOp::Pointwise`]); any other convolution multiplies all of
//!    an image's input positions at once by a dense `[positions_out·Co × positions_in·Ci]`
//!    matrix assembled from the taps that fall inside the map ([`TailOp::Dense`]; input
//!    positions no tap reaches are dropped first, so a strided 1×1 downsample reads one).
//!
//! Together they make a ResNet50 forward pass at batch 32 about 1.6× as fast as the plain
//! network's (`docs/benchmarks.md`, "Model server"). The plan is made for the one input size
//! the model takes, [`IMAGE_SIDE`] square.
//!
//! The layout is tch's ResNet (`conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}`, `.bn{1,2,3}`,
//! `.downsample.{0,1}`, `fc`), read from the variable names, so any checkpoint that
//! [`crate::Classifier::load`] accepts can be folded.

use std::collections::HashMap;
use std::sync::mpsc;

use tch::{Kind, Tensor};

use crate::{IMAGE_SIDE, ModelError};

/// BatchNorm's epsilon in tch's `batch_norm2d` default configuration.
const BN_EPS: f64 = 1e-5;

/// Feature maps this small or smaller are computed as matrix products (see the module docs).
pub const TAIL_SIDE: i64 = 2;

/// A detached copy of the variable `name`.
fn take(vars: &HashMap<String, Tensor>, name: &str) -> Result<Tensor, ModelError> {
    vars.get(name)
        .map(|t| t.detach().copy())
        .ok_or_else(|| ModelError::Options(format!("cannot fold the network: no `{name}`")))
}

/// A convolution with its BatchNorm folded in, as `[Co, Ci, k, k]` weights and a bias.
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(
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

    fn kernel(&self) -> i64 {
        self.weight.size()[3]
    }

    /// The side of the map this convolution makes from a `side`×`side` one.
    fn out_side(&self, side: i64) -> i64 {
        (side + 2 * self.padding - self.kernel()) / self.stride + 1
    }

    /// The same convolution with its weights in channels-last (NHWC) memory, for the large
    /// maps; shape unchanged. tch has no memory-format argument, so the strides are made by a
    /// permuted copy.
    fn channels_last(self) -> Conv {
        Conv {
            weight: self
                .weight
                .permute([0, 2, 3, 1])
                .contiguous()
                .permute([0, 3, 1, 2]),
            ..self
        }
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

/// A convolution over a small map, as one matrix product. Activations are rows of
/// `[n·positions, channels]`, positions row-major within an image.
#[derive(Debug)]
enum TailOp {
    /// A 1×1, stride-1 convolution: every position's channels times `[Co × Ci]`.
    Pointwise { weight: Tensor, bias: Tensor },
    /// Any other convolution: an image's `used` input positions (all of them when `None`),
    /// side by side, times `[positions_out·Co × used·Ci]`.
    Dense {
        used: Option<Tensor>,
        weight: Tensor,
        bias: Tensor,
        out_channels: i64,
    },
}

impl TailOp {
    /// Plan `f` for a `side`×`side` input map.
    fn new(f: Conv, side: i64) -> TailOp {
        let (co, ci) = (f.weight.size()[0], f.weight.size()[1]);
        let (k, out) = (f.kernel(), f.out_side(side));
        if k == 1 && f.stride == 1 && f.padding == 0 {
            return TailOp::Pointwise {
                weight: f.weight.view([co, ci]),
                bias: f.bias,
            };
        }
        // Every (output position, input position, tap) where the tap lands inside the map.
        let mut taps = Vec::new();
        for (po, (row_out, col_out)) in grid(out).enumerate() {
            for (pi, (row_in, col_in)) in grid(side).enumerate() {
                let kr = row_in - row_out * f.stride + f.padding;
                let kc = col_in - col_out * f.stride + f.padding;
                if (0..k).contains(&kr) && (0..k).contains(&kc) {
                    taps.push((po as i64, pi as i64, kr, kc));
                }
            }
        }
        let mut used: Vec<i64> = taps.iter().map(|&(_, pi, _, _)| pi).collect();
        used.sort_unstable();
        used.dedup();
        let n_used = used.len() as i64;
        // [positions_out, Co, used, Ci], viewed as the GEMM's [positions_out·Co, used·Ci].
        let dense = Tensor::zeros(
            [out * out, co, n_used, ci],
            (Kind::Float, f.weight.device()),
        );
        for &(po, pi, kr, kc) in &taps {
            let slot = used.binary_search(&pi).expect("collected above") as i64;
            dense
                .get(po)
                .select(1, slot)
                .copy_(&f.weight.select(2, kr).select(2, kc));
        }
        TailOp::Dense {
            used: (n_used != side * side).then(|| Tensor::from_slice(&used)),
            weight: dense.view([out * out * co, n_used * ci]),
            bias: f.bias.repeat([out * out]),
            out_channels: co,
        }
    }
}

/// Row-major (row, column) pairs of a `side`×`side` map.
fn grid(side: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..side).flat_map(move |r| (0..side).map(move |c| (r, c)))
}

/// One convolution of a block, in either representation.
trait Layer {
    /// `xs` holds `n` images.
    fn forward(&self, xs: &Tensor, n: i64) -> Tensor;
}

impl Layer for Conv {
    fn forward(&self, xs: &Tensor, _n: i64) -> Tensor {
        Conv::forward(self, xs)
    }
}

impl Layer for TailOp {
    fn forward(&self, xs: &Tensor, n: i64) -> Tensor {
        match self {
            TailOp::Pointwise { weight, bias } => xs.linear(weight, Some(bias)),
            TailOp::Dense {
                used,
                weight,
                bias,
                out_channels,
            } => {
                let ci = xs.size()[1];
                let images = match used {
                    Some(used) => xs.view([n, -1, ci]).index_select(1, used).view([n, -1]),
                    None => xs.view([n, -1]),
                };
                images.linear(weight, Some(bias)).view([-1, *out_channels])
            }
        }
    }
}

/// A residual block: two (basic) or three (bottleneck) convolutions, ReLU between them, and an
/// optional downsampling convolution on the skip path.
#[derive(Debug)]
struct Block<L> {
    convs: Vec<L>,
    downsample: Option<L>,
}

impl<L: Layer> Block<L> {
    fn forward(&self, xs: &Tensor, n: i64) -> Tensor {
        let mut ys = xs.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            ys = conv.forward(&ys, n);
            if i < last {
                let _ = ys.relu_();
            }
        }
        match &self.downsample {
            Some(d) => {
                let _ = ys.g_add_(&d.forward(xs, n));
            }
            None => {
                let _ = ys.g_add_(xs);
            }
        }
        let _ = ys.relu_();
        ys
    }
}

/// A block's folded convolutions (with their BatchNorm) read from `vars`, and its downsample.
type FoldedBlock = (Vec<Conv>, Option<Conv>);

/// Fold block `p` (e.g. `layer2.0`), or `None` past the last block of its layer.
fn fold_block(
    vars: &HashMap<String, Tensor>,
    p: &str,
    stride: i64,
) -> Result<Option<FoldedBlock>, ModelError> {
    if !vars.contains_key(&format!("{p}.conv1.weight")) {
        return Ok(None);
    }
    let conv = |i: usize, stride: i64, padding: i64| {
        Conv::new(
            vars,
            &format!("{p}.conv{i}"),
            &format!("{p}.bn{i}"),
            stride,
            padding,
        )
    };
    let convs = if vars.contains_key(&format!("{p}.conv3.weight")) {
        // Bottleneck: 1×1, 3×3 (strided), 1×1.
        vec![conv(1, 1, 0)?, conv(2, stride, 1)?, conv(3, 1, 0)?]
    } else {
        // Basic: 3×3 (strided), 3×3.
        vec![conv(1, stride, 1)?, conv(2, 1, 1)?]
    };
    let downsample = if vars.contains_key(&format!("{p}.downsample.0.weight")) {
        Some(Conv::new(
            vars,
            &format!("{p}.downsample.0"),
            &format!("{p}.downsample.1"),
            stride,
            0,
        )?)
    } else {
        None
    };
    Ok(Some((convs, downsample)))
}

/// The folded weights, planned for 28×28 drawings.
#[derive(Debug)]
struct Plan {
    stem: Conv,
    /// Blocks whose input map is larger than [`TAIL_SIDE`]: convolutions.
    blocks: Vec<Block<Conv>>,
    /// The rest: matrix products, starting on a `tail_side`×`tail_side` map.
    tail: Vec<Block<TailOp>>,
    tail_side: i64,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl Plan {
    fn fold(vars: &HashMap<String, Tensor>) -> Result<Plan, ModelError> {
        tch::no_grad(|| {
            let mut stem = Conv::new(vars, "conv1", "bn1", 2, 3)?;
            stem.weight = stem.weight.sum_dim_intlist(1, true, Kind::Float);
            // The map's side after the stem and its 3×3/2 max-pool.
            let mut side = (stem.out_side(IMAGE_SIDE) + 2 - 3) / 2 + 1;
            let (mut blocks, mut tail, mut tail_side) = (Vec::new(), Vec::new(), 0);
            for layer in 1..=4 {
                for i in 0.. {
                    // The first block of layers 2–4 halves the resolution.
                    let stride = if layer > 1 && i == 0 { 2 } else { 1 };
                    let Some((convs, downsample)) =
                        fold_block(vars, &format!("layer{layer}.{i}"), stride)?
                    else {
                        break;
                    };
                    let out = convs.iter().fold(side, |s, c| c.out_side(s));
                    if side > TAIL_SIDE {
                        blocks.push(Block {
                            convs: convs.into_iter().map(Conv::channels_last).collect(),
                            downsample: downsample.map(Conv::channels_last),
                        });
                    } else {
                        if tail.is_empty() {
                            tail_side = side;
                        }
                        let mut s = side;
                        let convs = convs
                            .into_iter()
                            .map(|c| {
                                let next = c.out_side(s);
                                let op = TailOp::new(c, s);
                                s = next;
                                op
                            })
                            .collect();
                        tail.push(Block {
                            convs,
                            downsample: downsample.map(|d| TailOp::new(d, side)),
                        });
                    }
                    side = out;
                }
            }
            if blocks.is_empty() && tail.is_empty() {
                return Err(ModelError::Options(
                    "cannot fold the network: it has no residual blocks".into(),
                ));
            }
            Ok(Plan {
                stem: stem.channels_last(),
                blocks,
                tail,
                tail_side,
                fc_weight: take(vars, "fc.weight")?,
                fc_bias: take(vars, "fc.bias")?,
            })
        })
    }

    fn logits(&self, xs: &Tensor) -> Tensor {
        let n = xs.size()[0];
        let mut ys = self.stem.forward(xs);
        let _ = ys.relu_();
        let mut ys = ys.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in &self.blocks {
            ys = block.forward(&ys, n);
        }
        let pooled = if self.tail.is_empty() {
            ys.adaptive_avg_pool2d([1, 1]).flat_view()
        } else {
            let size = ys.size();
            assert_eq!(
                size[2..],
                [self.tail_side, self.tail_side],
                "the folded network's tail is planned for the map of {IMAGE_SIDE}×{IMAGE_SIDE} drawings"
            );
            // NCHW with channels-last memory is NHWC: one row per position, no copy.
            let mut rows = ys.permute([0, 2, 3, 1]).reshape([-1, size[1]]);
            for block in &self.tail {
                rows = block.forward(&rows, n);
            }
            let channels = rows.size()[1];
            rows.view([n, -1, channels]).mean_dim(1, false, Kind::Float)
        };
        pooled.linear(&self.fc_weight, Some(&self.fc_bias))
    }
}

/// New handles to the same tensors (no copy), so another thread can own them.
trait ShallowClone {
    fn shallow_clone(&self) -> Self;
}

impl ShallowClone for Tensor {
    fn shallow_clone(&self) -> Self {
        Tensor::shallow_clone(self)
    }
}

impl<T: ShallowClone> ShallowClone for Option<T> {
    fn shallow_clone(&self) -> Self {
        self.as_ref().map(T::shallow_clone)
    }
}

impl<T: ShallowClone> ShallowClone for Vec<T> {
    fn shallow_clone(&self) -> Self {
        self.iter().map(T::shallow_clone).collect()
    }
}

impl ShallowClone for Conv {
    fn shallow_clone(&self) -> Self {
        Conv {
            weight: self.weight.shallow_clone(),
            bias: self.bias.shallow_clone(),
            ..*self
        }
    }
}

impl ShallowClone for TailOp {
    fn shallow_clone(&self) -> Self {
        match self {
            TailOp::Pointwise { weight, bias } => TailOp::Pointwise {
                weight: weight.shallow_clone(),
                bias: bias.shallow_clone(),
            },
            TailOp::Dense {
                used,
                weight,
                bias,
                out_channels,
            } => TailOp::Dense {
                used: used.shallow_clone(),
                weight: weight.shallow_clone(),
                bias: bias.shallow_clone(),
                out_channels: *out_channels,
            },
        }
    }
}

impl<L: ShallowClone> ShallowClone for Block<L> {
    fn shallow_clone(&self) -> Self {
        Block {
            convs: self.convs.shallow_clone(),
            downsample: self.downsample.shallow_clone(),
        }
    }
}

impl ShallowClone for Plan {
    fn shallow_clone(&self) -> Self {
        Plan {
            stem: self.stem.shallow_clone(),
            blocks: self.blocks.shallow_clone(),
            tail: self.tail.shallow_clone(),
            tail_side: self.tail_side,
            fc_weight: self.fc_weight.shallow_clone(),
            fc_bias: self.fc_bias.shallow_clone(),
        }
    }
}

/// A slice of a batch and where to send its logits.
type Slice = (Tensor, mpsc::SyncSender<Tensor>);

/// A thread that computes slices of batches, single-threaded, with its own handles to the
/// weights. It ends when its [`FusedNetwork`] is dropped.
#[derive(Debug)]
struct Helper {
    slices: mpsc::Sender<Slice>,
}

impl Helper {
    fn spawn(plan: Plan, index: usize) -> Result<Helper, ModelError> {
        let (slices, queue) = mpsc::channel::<Slice>();
        std::thread::Builder::new()
            .name(format!("forward-{index}"))
            .spawn(move || {
                tch::set_num_threads(1);
                let _guard = tch::no_grad_guard();
                for (xs, reply) in queue {
                    let _ = reply.send(plan.logits(&xs));
                }
            })
            .map_err(|e| ModelError::Options(format!("cannot start a forward-pass thread: {e}")))?;
        Ok(Helper { slices })
    }
}

/// The folded network: 1×28×28 drawings in, logits out; optionally each batch split into
/// slices computed side by side ([`FusedNetwork::split_across`]).
#[derive(Debug)]
pub struct FusedNetwork {
    plan: Plan,
    helpers: Vec<Helper>,
}

impl FusedNetwork {
    /// Fold the eval-mode network whose variables are `vars` (as `VarStore::variables` gives).
    pub fn fold(vars: &HashMap<String, Tensor>) -> Result<FusedNetwork, ModelError> {
        Ok(FusedNetwork {
            plan: Plan::fold(vars)?,
            helpers: Vec::new(),
        })
    }

    /// Compute each batch of two or more drawings as up to `slices` slices side by side: the
    /// calling thread takes the first, `slices − 1` helper threads (started here, each with
    /// libtorch limited to one thread, sharing the weights) take the others. On a few cores
    /// this beats one pass whose every operator is split across threads: ResNet's small maps
    /// give each operator little to share, and a descheduled thread stalls no partner at a
    /// barrier. The caller should limit its own thread to one libtorch thread
    /// (`tch::set_num_threads(1)`) so the slices do not compete for cores.
    pub fn split_across(mut self, slices: usize) -> Result<FusedNetwork, ModelError> {
        self.helpers = (1..slices.max(1))
            .map(|i| Helper::spawn(self.plan.shallow_clone(), i))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// How many slices a batch is split into at most.
    pub fn slices(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Another handle to the same folded weights (no copy), with helper threads of its own for
    /// as many slices, so another thread can predict with it at the same time.
    pub fn handle(&self) -> Result<FusedNetwork, ModelError> {
        FusedNetwork {
            plan: self.plan.shallow_clone(),
            helpers: Vec::new(),
        }
        .split_across(self.slices())
    }

    /// Logits of `n × 1 × 28 × 28` inputs (from [`crate::input::to_tensor`]). Call under
    /// `tch::no_grad`.
    ///
    /// # Panics
    /// If the map reaching the tail is not the one [`IMAGE_SIDE`]-square drawings make there,
    /// or a helper thread's forward pass panicked.
    pub fn logits(&self, xs: &Tensor) -> Tensor {
        self.logits_in(xs, self.slices())
    }

    /// [`FusedNetwork::logits`] in at most `slices` slices (1: on the calling thread alone).
    ///
    /// # Panics
    /// As [`FusedNetwork::logits`].
    pub fn logits_in(&self, xs: &Tensor, slices: usize) -> Tensor {
        let n = xs.size()[0];
        let slices = (slices.min(self.slices()) as i64).min(n);
        if slices <= 1 {
            return self.plan.logits(xs);
        }
        let mut parts = xs.chunk(slices, 0).into_iter();
        let first = parts
            .next()
            .expect("a batch of two or more has a first slice");
        let pending: Vec<mpsc::Receiver<Tensor>> = parts
            .zip(&self.helpers)
            .map(|(part, helper)| {
                let (reply, answer) = mpsc::sync_channel(1);
                helper
                    .slices
                    .send((part, reply))
                    .expect("a forward-pass thread is gone. This is a bug.");
                answer
            })
            .collect();
        let mut logits = vec![self.plan.logits(&first)];
        for answer in pending {
            logits.push(
                answer
                    .recv()
                    .expect("a forward-pass thread failed (see its panic above)"),
            );
        }
        Tensor::cat(&logits, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random folded convolution, `[co, ci, k, k]`.
    fn folded(co: i64, ci: i64, k: i64, stride: i64, padding: i64) -> Conv {
        Conv {
            weight: Tensor::randn([co, ci, k, k], (Kind::Float, tch::Device::Cpu)),
            bias: Tensor::randn([co], (Kind::Float, tch::Device::Cpu)),
            stride,
            padding,
        }
    }

    #[test]
    fn every_tail_op_computes_the_convolution_it_replaces() {
        tch::manual_seed(3);
        let (n, ci, co) = (3, 5, 4);
        // (kernel, stride, padding, input side): ResNet's small-map cases and a few more.
        for (k, stride, padding, side) in [
            (3, 1, 1, 2),
            (3, 1, 1, 1),
            (3, 2, 1, 2),
            (1, 2, 0, 2),
            (1, 1, 0, 2),
            (3, 2, 1, 3),
            (3, 1, 0, 3),
        ] {
            let f = folded(co, ci, k, stride, padding);
            let xs = Tensor::randn([n, ci, side, side], (Kind::Float, tch::Device::Cpu));
            let want = xs.conv2d(
                &f.weight,
                Some(&f.bias),
                [stride, stride],
                [padding, padding],
                [1, 1],
                1,
            );
            let out = f.out_side(side);
            assert_eq!(want.size(), vec![n, co, out, out], "out_side");
            let op = TailOp::new(f, side);
            let rows = xs.permute([0, 2, 3, 1]).reshape([-1, ci]);
            let got = op
                .forward(&rows, n)
                .view([n, out, out, co])
                .permute([0, 3, 1, 2]);
            let worst = (&got - &want).abs().max().double_value(&[]);
            assert!(
                worst < 1e-4,
                "k={k} s={stride} p={padding} side={side}: off by {worst}"
            );
            // Only the one unpadded case is pointwise; a strided 1×1 reads one position of four.
            match (&op, k, stride) {
                (TailOp::Pointwise { .. }, 1, 1) => {}
                (TailOp::Dense { used: Some(u), .. }, 1, 2) => assert_eq!(u.size(), vec![1]),
                (TailOp::Dense { .. }, _, _) if (k, stride) != (1, 1) => {}
                _ => panic!("k={k} s={stride}: unexpected plan {op:?}"),
            }
        }
    }

    #[test]
    fn resnet50_runs_its_last_eight_blocks_as_matrix_products() {
        tch::manual_seed(4);
        let cats: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let model =
            crate::Classifier::new_untrained(doodle_core::config::Architecture::Resnet50, &cats)
                .unwrap();
        let fused = FusedNetwork::fold(&model.var_store().variables()).unwrap();
        // Layers 1 and 2 and the first block of layer 3 see maps of 7×7 and 4×4; the other
        // five blocks of layer 3 see 2×2, layer 4's three see 2×2 then 1×1.
        assert_eq!((fused.plan.blocks.len(), fused.plan.tail.len()), (8, 8));
        assert_eq!(fused.plan.tail_side, 2);
    }

    #[test]
    fn a_split_batch_gives_the_logits_of_one_pass() {
        tch::manual_seed(6);
        let cats: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let model =
            crate::Classifier::new_untrained(doodle_core::config::Architecture::Resnet18, &cats)
                .unwrap();
        let vars = model.var_store().variables();
        let whole = FusedNetwork::fold(&vars).unwrap();
        for slices in [2, 3] {
            let split = FusedNetwork::fold(&vars)
                .unwrap()
                .split_across(slices)
                .unwrap();
            assert_eq!(split.slices(), slices);
            // Fewer drawings than slices, as many, and more (uneven slices).
            for n in [1, 2, 3, 7] {
                let xs = Tensor::rand([n, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
                let (want, got) = tch::no_grad(|| (whole.logits(&xs), split.logits(&xs)));
                assert_eq!(got.size(), vec![n, 3], "slices={slices} n={n}");
                let worst = (&got - &want).abs().max().double_value(&[]);
                assert!(worst < 1e-4, "slices={slices} n={n}: off by {worst}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "planned for the map of 28×28 drawings")]
    fn other_sizes_are_refused() {
        let cats: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let model =
            crate::Classifier::new_untrained(doodle_core::config::Architecture::Resnet18, &cats)
                .unwrap();
        let fused = FusedNetwork::fold(&model.var_store().variables()).unwrap();
        let _ = tch::no_grad(|| {
            fused.logits(&Tensor::zeros(
                [1, 1, 64, 64],
                (Kind::Float, tch::Device::Cpu),
            ))
        });
    }
}
