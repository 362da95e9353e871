//! Proves libtorch links and runs on this machine's CPU: a forward and a backward pass.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn small_network_trains_on_cpu() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::conv2d(&root / "conv", 1, 4, 3, Default::default()))
        .add_fn(|x| x.relu().flatten(1, -1))
        .add(nn::linear(&root / "fc", 4 * 26 * 26, 2, Default::default()));
    let mut opt = nn::Sgd::default().build(&vs, 0.05).unwrap();

    // Two classes a network can tell apart: blank images and images with a bright square.
    let blank = Tensor::zeros([8, 1, 28, 28], (Kind::Float, Device::Cpu));
    let square = blank.copy();
    let _ = square.narrow(2, 8, 12).narrow(3, 8, 12).fill_(1.0);
    let x = Tensor::cat(&[blank, square], 0);
    let y = Tensor::cat(
        &[
            Tensor::zeros([8], (Kind::Int64, Device::Cpu)),
            Tensor::ones([8], (Kind::Int64, Device::Cpu)),
        ],
        0,
    );

    let first = net
        .forward(&x)
        .cross_entropy_for_logits(&y)
        .double_value(&[]);
    for _ in 0..20 {
        let loss = net.forward(&x).cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
    }
    let last = net
        .forward(&x)
        .cross_entropy_for_logits(&y)
        .double_value(&[]);
    assert!(last < first * 0.5, "loss should fall: {first} -> {last}");
    let accuracy = net
        .forward(&x)
        .argmax(1, false)
        .eq_tensor(&y)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    assert_eq!(accuracy, 1.0);
}

#[test]
fn input_convention_scales_bytes_to_unit_floats() {
    let mut pixels = vec![0u8; 784 * 2];
    pixels[0] = 255;
    pixels[784 + 783] = 51;
    let t = doodle_model::input::to_tensor(&pixels);
    assert_eq!(t.size(), [2, 1, 28, 28]);
    assert_eq!(t.double_value(&[0, 0, 0, 0]), 1.0);
    assert!((t.double_value(&[1, 0, 27, 27]) - 0.2).abs() < 1e-6);
    assert_eq!(t.sum(Kind::Float).double_value(&[]) as f32, 1.2);
}
