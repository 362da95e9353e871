//! Checkpoints: save → load gives identical outputs; mismatches are refused; the inference API.

mod common;

use common::{drawings, names};
use doodle_core::config::Architecture;
use doodle_model::checkpoint::{METADATA_FILE, WEIGHTS_FILE};
use doodle_model::fused::FusedNetwork;
use doodle_model::{Classifier, ModelError, save_untrained};
use tch::Tensor;

fn assert_send<T: Send>() {}

#[test]
fn classifier_is_send() {
    assert_send::<Classifier>();
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let cats = names(&["cat", "dog", "fish"]);
    tch::manual_seed(3);
    let model = Classifier::new_untrained(Architecture::Resnet18, &cats).unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Classifier::load(dir.path()).unwrap();

    let px = drawings(4, 11);
    let a = model.predict_proba(&px).unwrap();
    let b = loaded.predict_proba(&px).unwrap();
    assert_eq!(a.len(), 4 * 3);
    assert_eq!(a, b, "bit-identical probabilities after a round trip");
    for row in a.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert_eq!(loaded.categories(), &cats[..]);
    assert_eq!(loaded.metadata(), model.metadata());
}

#[test]
fn save_untrained_writes_a_loadable_resnet50_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cats = names(&["a", "b"]);
    save_untrained(dir.path(), Architecture::Resnet50, &cats, 1).unwrap();
    assert!(dir.path().join(WEIGHTS_FILE).is_file());
    let m = Classifier::load(dir.path()).unwrap();
    assert_eq!(m.metadata().architecture, "resnet50");
    assert_eq!(m.metadata().stem, doodle_model::net::STEM);
    assert!(m.metadata().val_accuracy.is_none());
    assert_eq!(m.predict_proba(&drawings(1, 0)).unwrap().len(), 2);

    // Same seed, same weights.
    let dir2 = tempfile::tempdir().unwrap();
    save_untrained(dir2.path(), Architecture::Resnet50, &cats, 1).unwrap();
    let m2 = Classifier::load(dir2.path()).unwrap();
    let px = drawings(2, 4);
    assert_eq!(
        m.predict_proba(&px).unwrap(),
        m2.predict_proba(&px).unwrap()
    );
}

#[test]
fn predict_proba_rejects_partial_and_empty_input() {
    tch::manual_seed(0);
    let m = Classifier::new_untrained(Architecture::Resnet18, &names(&["a", "b"])).unwrap();
    assert!(matches!(m.predict_proba(&[]), Err(ModelError::Input(_))));
    assert!(matches!(
        m.predict_proba(&[0u8; 785]),
        Err(ModelError::Input(_))
    ));
}

fn edit_metadata(dir: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(METADATA_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

fn refused(dir: &std::path::Path, needle: &str) {
    let err = Classifier::load(dir).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.display().to_string()),
        "names the checkpoint: {msg}"
    );
    assert!(msg.contains(needle), "says `{needle}`: {msg}");
}

#[test]
fn checkpoint_with_more_categories_than_outputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    save_untrained(dir.path(), Architecture::Resnet18, &names(&["a", "b"]), 0).unwrap();
    edit_metadata(dir.path(), |v| {
        v["categories"] = serde_json::json!(["a", "b", "c"])
    });
    refused(dir.path(), "2 outputs but the metadata lists 3 categories");
}

#[test]
fn checkpoint_with_the_wrong_architecture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    save_untrained(dir.path(), Architecture::Resnet18, &names(&["a", "b"]), 0).unwrap();
    edit_metadata(dir.path(), |v| v["architecture"] = "resnet50".into());
    refused(dir.path(), "wrong architecture");

    edit_metadata(dir.path(), |v| v["architecture"] = "vgg16".into());
    refused(dir.path(), "unknown architecture `vgg16`");
}

#[test]
fn checkpoint_with_a_tensor_of_the_wrong_shape_is_refused() {
    // A 1-row final layer would broadcast silently into a 2-row one with tch's own loader.
    let dir = tempfile::tempdir().unwrap();
    save_untrained(dir.path(), Architecture::Resnet18, &names(&["a", "b"]), 0).unwrap();
    let path = dir.path().join(WEIGHTS_FILE);
    let mut tensors = Tensor::read_safetensors(&path).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name == "fc.bias" {
            *t = Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, &path).unwrap();
    refused(dir.path(), "`fc.bias` has shape [1]");
}

#[test]
fn missing_or_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    save_untrained(dir.path(), Architecture::Resnet18, &names(&["a", "b"]), 0).unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), b"not safetensors").unwrap();
    refused(dir.path(), "unreadable safetensors");
    std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
    refused(dir.path(), "not found");
    std::fs::write(dir.path().join(METADATA_FILE), b"{").unwrap();
    refused(dir.path(), "invalid metadata");
    let empty = tempfile::tempdir().unwrap();
    refused(empty.path(), METADATA_FILE);
}

#[test]
fn adding_a_category_keeps_the_learned_rows_bit_identical() {
    tch::manual_seed(5);
    let old =
        Classifier::new_untrained(Architecture::Resnet18, &names(&["cat", "dog", "fish"])).unwrap();
    let new_cats = names(&["cat", "owl", "dog", "fish"]);
    let new = old.with_categories(&new_cats).unwrap();
    let (ow, ob) = (
        &old.network().fc().ws,
        old.network().fc().bs.as_ref().unwrap(),
    );
    let (nw, nb) = (
        &new.network().fc().ws,
        new.network().fc().bs.as_ref().unwrap(),
    );
    assert_eq!(nw.size(), [4, 512]);
    for (old_row, new_row) in [(0, 0), (1, 2), (2, 3)] {
        assert!(
            nw.get(new_row).equal(&ow.get(old_row)),
            "row {old_row} -> {new_row}"
        );
        assert!(nb.get(new_row).equal(&ob.get(old_row)));
    }
    assert!(
        !nw.get(1).equal(&ow.get(0)),
        "the new category gets its own row"
    );
    // Everything before the final layer is copied as is.
    let (ov, nv) = (old.var_store().variables(), new.var_store().variables());
    for (name, t) in &ov {
        if !name.starts_with("fc.") {
            assert!(t.equal(&nv[name]), "{name}");
        }
    }
    assert_eq!(new.categories(), &new_cats[..]);
}

#[test]
fn mirrored_tta_averages_the_drawing_and_its_mirror() {
    tch::manual_seed(2);
    let mut m =
        Classifier::new_untrained(Architecture::Resnet18, &names(&["a", "b", "c"])).unwrap();
    let px = drawings(2, 5);
    let mirrored: Vec<u8> = px
        .chunks(28)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    let plain = m.predict_proba(&px).unwrap();
    let mirror = m.predict_proba(&mirrored).unwrap();
    m.metadata_mut().tta_hflip = true;
    let tta = m.predict_proba(&px).unwrap();
    for i in 0..6 {
        assert!((tta[i] - (plain[i] + mirror[i]) / 2.0).abs() < 1e-5, "{i}");
    }
}

/// Give every BatchNorm non-trivial statistics and affine parameters, as training does, so
/// that folding them into the convolutions is really exercised.
fn perturb_batchnorm(model: &Classifier) {
    tch::no_grad(|| {
        for (name, var) in model.var_store().variables() {
            let mut var = var;
            let r = Tensor::rand_like(&var);
            if name.ends_with("running_var") {
                var.copy_(&(r * 1.5 + 0.25));
            } else if name.ends_with("running_mean")
                || name.contains(".bn")
                || name.starts_with("bn1.")
                || name.contains("downsample.1.")
            {
                var.copy_(&(r - 0.5 + if name.ends_with(".weight") { 1.0 } else { 0.0 }));
            }
        }
    });
}

#[test]
fn the_folded_network_answers_what_the_network_does() {
    tch::set_num_threads(1);
    for arch in [Architecture::Resnet18, Architecture::Resnet50] {
        tch::manual_seed(5);
        let cats = names(&["a", "b", "c", "d"]);
        let mut model = Classifier::new_untrained(arch, &cats).unwrap();
        perturb_batchnorm(&model);
        let xs = doodle_model::input::to_tensor(&drawings(5, 9));

        // Logits: the same up to float rounding, relative to their size (an untrained ResNet50
        // with random statistics has large activations), and not the same for every drawing.
        let folded = FusedNetwork::fold(&model.var_store().variables()).unwrap();
        let (plain, fused) =
            tch::no_grad(|| (model.network().logits(&xs, false), folded.logits(&xs)));
        assert_eq!(plain.size(), vec![5, 4]);
        assert_eq!(fused.size(), vec![5, 4]);
        let scale = plain.abs().max().double_value(&[]);
        let worst = (&plain - &fused).abs().max().double_value(&[]);
        assert!(
            worst <= 1e-4 * scale,
            "{arch:?}: differs by {worst} at scale {scale}"
        );
        let spread = (plain.get(0) - plain.get(1)).abs().max().double_value(&[]);
        assert!(spread > 1e-3 * scale, "{arch:?}: degenerate outputs");

        // Classifier::fuse switches predictions to the folded copy (mirrored TTA included).
        for tta in [false, true] {
            model.metadata_mut().tta_hflip = tta;
            let px = drawings(5, 9);
            assert!(!model.is_fused());
            let before = model.predict_proba(&px).unwrap();
            model.fuse().unwrap();
            assert!(model.is_fused());
            let after = model.predict_proba(&px).unwrap();
            assert_eq!(before.len(), after.len());
            let worst = before
                .iter()
                .zip(&after)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-4,
                "{arch:?} tta={tta}: probabilities differ by {worst}"
            );
            // A fresh load serves from the network again.
            let dir = tempfile::tempdir().unwrap();
            model.save(dir.path()).unwrap();
            model = Classifier::load(dir.path()).unwrap();
        }
    }
}

#[test]
fn predictors_answer_what_the_classifier_does_from_other_threads_at_once() {
    tch::manual_seed(8);
    let mut model =
        Classifier::new_untrained(Architecture::Resnet18, &names(&["a", "b", "c"])).unwrap();
    perturb_batchnorm(&model);
    model.metadata_mut().tta_hflip = true;
    let err = model.predictor().unwrap_err().to_string();
    assert!(
        err.contains("folded"),
        "an unfolded classifier refuses: {err}"
    );
    model.fuse_split(2).unwrap();
    let px = drawings(5, 21);
    let want = model.predict_proba(&px).unwrap();
    let mut predictors: Vec<_> = (0..4).map(|_| model.predictor().unwrap()).collect();
    assert!(predictors.iter().all(|p| p.slices() == 2));
    let kept = predictors.pop().unwrap();
    // The classifier goes away: the handles keep the weights alive.
    drop(model);
    let answers: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let running: Vec<_> = predictors
            .into_iter()
            .map(|p| {
                let px = &px;
                s.spawn(move || {
                    tch::set_num_threads(1);
                    (0..3)
                        .map(|i| p.predict_proba(px, 1 + i % 2).unwrap())
                        .collect()
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for got in answers.iter().flatten() {
        let worst = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert_eq!(got.len(), want.len());
        assert!(worst < 1e-5, "a predictor differs by {worst}");
    }
    assert!(kept.predict_proba(&px[..100], 1).is_err());
    assert_eq!(kept.predict_proba(&px, 1).unwrap().len(), want.len());
}

#[test]
fn zero_init_residual_zeroes_the_last_batchnorm_of_every_block() {
    for (arch, blocks, last) in [
        (Architecture::Resnet18, 8, "bn2"),
        (Architecture::Resnet50, 16, "bn3"),
    ] {
        tch::manual_seed(1);
        let mut m = Classifier::new_untrained(arch, &names(&["a", "b"])).unwrap();
        assert_eq!(m.zero_init_residual(), blocks, "{arch:?}");
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let stored = Tensor::read_safetensors(dir.path().join(WEIGHTS_FILE)).unwrap();
        // Every weight (biases, BatchNorm shifts and running means start at zero anyway).
        for (name, t) in stored.iter().filter(|(n, _)| n.ends_with(".weight")) {
            let zero = t.abs().sum(tch::Kind::Double).double_value(&[]) == 0.0;
            let is_last = name.starts_with("layer") && name.ends_with(&format!(".{last}.weight"));
            assert_eq!(zero, is_last, "{arch:?} {name}");
        }
        // The network still answers: every block passes its input through.
        let p = m.predict_proba(&drawings(2, 5)).unwrap();
        assert!(p.iter().all(|v| v.is_finite()));
    }
}
