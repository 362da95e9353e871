//! Speed benchmark: forward latency at several batch sizes and training throughput, on random
//! drawings with a freshly initialised network (the numbers do not depend on the weights).

use std::time::Instant;

use doodle_core::config::Architecture;
use serde::Serialize;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Reduction, Tensor};

use crate::fused::FusedNetwork;
use crate::rng::Rng;
use crate::train::{Augment, augment};
use crate::{Classifier, ModelError, input};

#[derive(Debug, Clone, Serialize)]
pub struct ForwardResult {
    pub batch: usize,
    /// The serving copy with BatchNorm folded into the convolutions ([`crate::fused`]).
    pub folded: bool,
    /// Median milliseconds per forward pass.
    pub median_ms: f64,
    pub images_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    pub batch: usize,
    pub head_only: bool,
    /// Median images per second over the timed steps (augmentation and data copy included).
    pub images_per_second: f64,
}

/// The input side of one training step alone: gathering a shuffled batch from memory, the
/// byte → float conversion and the random affine augmentation.
#[derive(Debug, Clone, Serialize)]
pub struct DataResult {
    pub batch: usize,
    pub median_ms: f64,
    pub images_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub architecture: String,
    pub threads: i32,
    pub forward: Vec<ForwardResult>,
    pub train: Vec<TrainResult>,
    pub data: Vec<DataResult>,
    pub peak_rss_mib: Option<f64>,
}

fn random_pixels(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n * 784)
        .map(|_| {
            if rng.unit() < 0.2 {
                (rng.unit() * 255.0) as u8
            } else {
                0
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run the benchmark: `forward_batches` timed `iters` times each after a warm-up, then
/// `train_steps` SGD steps at each of `train_batches` (full network and final layer only).
pub fn run(
    arch: Architecture,
    forward_batches: &[usize],
    train_batches: &[usize],
    iters: usize,
    train_steps: usize,
) -> Result<BenchReport, ModelError> {
    let mut rng = Rng::new(7);
    let cats: Vec<String> = (0..15).map(|i| format!("c{i}")).collect();
    tch::manual_seed(0);
    let model = Classifier::new_untrained(arch, &cats)?;
    // The network as trained and its BatchNorm-folded serving copy, timed in alternation so
    // that a change in the machine's speed touches both alike.
    let folded = FusedNetwork::fold(&model.var_store().variables())?;
    let mut forward = Vec::new();
    for &b in forward_batches {
        let px = random_pixels(&mut rng, b);
        let xs = input::to_tensor(&px);
        let plain = |xs: &Tensor| model.network().logits(xs, false).softmax(-1, Kind::Float);
        let fused = |xs: &Tensor| folded.logits(xs).softmax(-1, Kind::Float);
        let (mut t_plain, mut t_fused) = (Vec::new(), Vec::new());
        tch::no_grad(|| {
            let _ = (plain(&xs), fused(&xs)); // warm-up
            for _ in 0..iters.max(1) {
                let t = Instant::now();
                let _ = plain(&input::to_tensor(&px));
                t_plain.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                let _ = fused(&input::to_tensor(&px));
                t_fused.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        });
        for (is_folded, times) in [(false, t_plain), (true, t_fused)] {
            let ms = median(times);
            tracing::info!(
                "forward batch {b}{}: {ms:.2} ms ({:.0} img/s)",
                if is_folded { " (BatchNorm folded)" } else { "" },
                b as f64 * 1000.0 / ms
            );
            forward.push(ForwardResult {
                batch: b,
                folded: is_folded,
                median_ms: ms,
                images_per_second: b as f64 * 1000.0 / ms,
            });
        }
    }
    let mut train = Vec::new();
    for head_only in [false, true] {
        for &b in train_batches {
            let net = model.network();
            let mut opt = nn::Sgd {
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            }
            .build(model.var_store(), 0.01)?;
            let labels: Vec<i64> = (0..b).map(|i| (i % 15) as i64).collect();
            let ys = Tensor::from_slice(&labels);
            let mut rates = Vec::new();
            for s in 0..train_steps.max(1) + 1 {
                let t = Instant::now();
                let px = random_pixels(&mut rng, b);
                let xs = augment(&input::to_tensor(&px), &Augment::default(), &mut rng);
                let logits = if head_only {
                    let f = tch::no_grad(|| net.features(&xs, false));
                    net.head(&f)
                } else {
                    net.logits(&xs, true)
                };
                let loss =
                    logits.cross_entropy_loss::<Tensor>(&ys, None, Reduction::Mean, -100, 0.1);
                opt.backward_step(&loss);
                if s > 0 {
                    rates.push(b as f64 / t.elapsed().as_secs_f64());
                }
            }
            let r = median(rates);
            tracing::info!(
                "train batch {b} ({}): {r:.0} img/s",
                if head_only {
                    "final layer only"
                } else {
                    "full"
                }
            );
            train.push(TrainResult {
                batch: b,
                head_only,
                images_per_second: r,
            });
        }
    }
    // The data path on its own, from a 30 000-drawing in-memory set like the real one.
    let pool = random_pixels(&mut rng, 30_000);
    let mut data = Vec::new();
    for &b in train_batches {
        let mut times = Vec::new();
        let mut batch = Vec::with_capacity(b * 784);
        for _ in 0..iters.max(1) {
            let t = Instant::now();
            batch.clear();
            for _ in 0..b {
                let i = rng.below(30_000);
                batch.extend_from_slice(&pool[i * 784..(i + 1) * 784]);
            }
            let xs = augment(&input::to_tensor(&batch), &Augment::default(), &mut rng);
            let _ = xs.sum(Kind::Float).double_value(&[]);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let ms = median(times);
        tracing::info!(
            "data path batch {b}: {ms:.2} ms ({:.0} img/s)",
            b as f64 * 1000.0 / ms
        );
        data.push(DataResult {
            batch: b,
            median_ms: ms,
            images_per_second: b as f64 * 1000.0 / ms,
        });
    }
    Ok(BenchReport {
        architecture: crate::net::architecture_name(arch).into(),
        threads: tch::get_num_threads(),
        forward,
        train,
        data,
        peak_rss_mib: crate::train::peak_rss_mib(),
    })
}
