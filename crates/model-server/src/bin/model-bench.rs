//! Helpers for `scripts/bench-model-server.sh`: set up a registry with a ResNet50 (the
//! deployed base model if there is one, else freshly initialised weights, which cost the
//! same to run), write wrk's request script with real drawings, and measure the raw
//! forward pass in-process: the network as loaded, then the serving copy with the server's
//! settings (BatchNorm folded, the same workers and thread counts): one pass at a time, split
//! as a lone worker splits it, and every worker running its own passes at once, as under load.
//!
//! ```text
//! model-bench setup <registry dir> <lua out> <quickdraw train dir> [checkpoint dir]
//! model-bench raw <checkpoint dir> <iterations>
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use doodle_core::config::Architecture;
use doodle_model::Classifier;
use doodle_model_server::swap::ServeOptions;
use doodle_registry::LocalRegistry;

const MODEL_NAME: &str = "doodle-classifier";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") if args.len() >= 4 => setup(
            Path::new(&args[1]),
            Path::new(&args[2]),
            Path::new(&args[3]),
            args.get(4).map(PathBuf::from),
        ),
        Some("raw") if args.len() == 3 => raw(Path::new(&args[1]), args[2].parse()?),
        _ => anyhow::bail!(
            "usage: model-bench setup <registry dir> <lua out> <quickdraw train dir> [checkpoint]\n       model-bench raw <checkpoint dir> <iterations>"
        ),
    }
}

/// The first rows of each category's .npy file (v1.0 header, uint8 (N, 784)).
fn drawings(train_dir: &Path, per_category: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(train_dir)
        .with_context(|| format!("reading {}", train_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    files.sort();
    for file in files {
        let data = doodle_model::data::read_npy(&file)?;
        out.extend(data.chunks(784).take(per_category).map(<[u8]>::to_vec));
    }
    anyhow::ensure!(!out.is_empty(), "no drawings in {}", train_dir.display());
    Ok(out)
}

fn setup(
    registry_dir: &Path,
    lua: &Path,
    train_dir: &Path,
    checkpoint: Option<PathBuf>,
) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let checkpoint = match checkpoint {
        Some(dir) => dir,
        None => {
            let dir = scratch.path().join("resnet50");
            let categories: Vec<String> = doodle_model::DEFAULT_CATEGORIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            doodle_model::save_untrained(&dir, Architecture::Resnet50, &categories, 0)?;
            dir
        }
    };
    let registry = LocalRegistry::new(registry_dir, MODEL_NAME)?;
    let version = registry.register(&checkpoint, Default::default())?;
    registry.set_alias("champion", version.version)?;
    println!("{}", version.dir.display());

    // wrk cycles through real drawings, one per request, as the design's UI sends them.
    let mut script = String::from("local bodies = {\n");
    for d in drawings(train_dir, 8)? {
        writeln!(
            script,
            "  '{{\"inputs\": \"{}\"}}',",
            doodle_core::image::encode_base64(&d)
        )?;
    }
    script.push_str(
        "}\nlocal i = 0\nwrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n\
         request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n",
    );
    std::fs::write(lua, script)?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn raw(checkpoint: &Path, iterations: usize) -> anyhow::Result<()> {
    // What the server computes: the checkpoint as loaded ("plain"), then the serving copy the
    // configuration asks for (folded, split into slices), with the server's thread settings.
    let settings = doodle_core::Settings::load()?;
    let serve = ServeOptions::from_settings(&settings);
    let mut classifier = Classifier::load(checkpoint)?;
    let _guard = tch::no_grad_guard();
    time_passes("plain", &classifier, iterations)?;
    if serve.fold_batchnorm {
        classifier.fuse_split(serve.workers)?;
        let threads = serve.predicting_threads(settings.model.threads);
        if threads > 0 {
            tch::set_num_threads(threads as i32);
        }
        time_passes(
            &format!("served alone ({} slices)", classifier.forward_slices()),
            &classifier,
            iterations,
        )?;
        if serve.workers > 1 {
            time_workers(&classifier, serve.workers, threads, iterations)?;
        }
    }
    Ok(())
}

/// Every worker running unsplit batch-32 passes at once, each on its own thread: the
/// server's throughput ceiling under load.
fn time_workers(
    classifier: &Classifier,
    workers: usize,
    threads: usize,
    iterations: usize,
) -> anyhow::Result<()> {
    let input = vec![0u8; 784 * 32];
    let predictors = (0..workers)
        .map(|_| classifier.predictor())
        .collect::<Result<Vec<_>, _>>()?;
    // Each thread warms up, then all start timing together.
    let ready = std::sync::Barrier::new(workers + 1);
    let (mut times, wall) = std::thread::scope(|s| -> anyhow::Result<(Vec<f64>, f64)> {
        let running: Vec<_> = predictors
            .into_iter()
            .map(|p| {
                let (input, ready) = (&input, &ready);
                s.spawn(move || -> anyhow::Result<Vec<f64>> {
                    if threads > 0 {
                        tch::set_num_threads(threads as i32);
                    }
                    let _guard = tch::no_grad_guard();
                    let warm = (0..3).try_for_each(|_| p.predict_proba(input, 1).map(drop));
                    ready.wait(); // even after a failure, or the others would wait forever
                    warm?;
                    (0..iterations)
                        .map(|_| {
                            let start = Instant::now();
                            p.predict_proba(input, 1)?;
                            Ok(start.elapsed().as_secs_f64() * 1000.0)
                        })
                        .collect()
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let mut all = Vec::new();
        for t in running {
            all.extend(t.join().expect("a bench thread panicked")?);
        }
        Ok((all, start.elapsed().as_secs_f64()))
    })?;
    times.sort_by(f64::total_cmp);
    println!(
        "raw served ({workers} workers at once) batch=32  p50={:.2}ms p99={:.2}ms throughput={:.0} img/s",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        (32 * times.len()) as f64 / wall
    );
    Ok(())
}

fn time_passes(label: &str, classifier: &Classifier, iterations: usize) -> anyhow::Result<()> {
    let blank = vec![0u8; 784 * 32];
    for (batch, iters) in [(1usize, iterations * 4), (32, iterations)] {
        let input = &blank[..784 * batch];
        for _ in 0..3 {
            classifier.predict_proba(input)?;
        }
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let start = Instant::now();
            classifier.predict_proba(input)?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 0.5);
        println!(
            "raw {label} batch={batch:<3} p50={p50:.2}ms p99={:.2}ms throughput={:.0} img/s",
            percentile(&times, 0.99),
            batch as f64 * 1000.0 / p50
        );
    }
    Ok(())
}
