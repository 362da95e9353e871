//! Nothing lost, nothing doubled: stages 2 and 3 SIGKILLed at random instants, again and
//! again, while new drawings keep arriving; at the end every drawing saved is in the data
//! exactly once (or still waiting as its PNG), byte for byte.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Pipeline, Rng, drawing, id_of};
use doodle_core::image::Pixels;

const MERGE: &str = env!("CARGO_BIN_EXE_stage2-merge");
const CONVERT: &str = env!("CARGO_BIN_EXE_stage3-convert");
const KILLS: usize = 60;
const CATEGORIES: [&str; 4] = ["cat", "dog", "hot dog", "new-one"];

/// How long a full run of `bin` takes on this pipeline now.
fn time_full_run(p: &Pipeline, bin: &str) -> Duration {
    let start = Instant::now();
    p.run_ok(bin);
    start.elapsed()
}

/// Start `bin`, SIGKILL it after `delay` (if it is still running). True when it was killed.
fn kill_after(p: &Pipeline, bin: &str, delay: Duration) -> bool {
    let mut child = p
        .command(bin)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    killed
}

#[test]
fn random_kills_of_merge_and_convert_lose_and_double_nothing() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("CRASH_SEED={seed} replays this run");
    let mut rng = Rng::new(seed);
    let p = Pipeline::new();
    let mut saved: BTreeMap<u32, (String, Pixels)> = BTreeMap::new();
    let mut next_id = 0u32;
    let mut save = |p: &Pipeline, rng: &mut Rng, n: u64| {
        for _ in 0..n {
            let cat = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
            let d = drawing(next_id);
            p.save(cat, &d);
            saved.insert(next_id, (cat.to_string(), d));
            next_id += 1;
        }
    };

    // Calibrate: how long each stage takes on a batch, so kills land anywhere inside a run.
    save(&p, &mut rng, 400);
    let convert_time = time_full_run(&p, CONVERT);
    let merge_time = time_full_run(&p, MERGE).max(Duration::from_millis(5));
    eprintln!("full runs: convert {convert_time:?}, merge {merge_time:?}");

    let (mut kills, mut attempts) = (0, 0);
    while kills < KILLS {
        attempts += 1;
        assert!(attempts < KILLS * 20, "stages finish before any kill lands");
        let batch = 100 + rng.below(300);
        save(&p, &mut rng, batch);
        let (bin, span) = if attempts % 2 == 0 {
            (CONVERT, convert_time)
        } else {
            (MERGE, merge_time)
        };
        let delay = span.mul_f64(rng.below(1300) as f64 / 1000.0);
        if kill_after(&p, bin, delay) {
            kills += 1;
        }
        if attempts % 7 == 0 {
            p.run_ok(bin); // now and then a run that finishes, over whatever the kills left
        }
    }
    eprintln!("{kills} kills in {attempts} starts");
    let recoveries = recoveries_logged(&p);
    eprintln!("recoveries logged: {recoveries:?}");
    assert!(
        recoveries.iter().sum::<usize>() > 0,
        "no kill landed inside a commit; the test proved nothing"
    );

    // Whatever state the kills left, finishing runs bring everything in exactly once.
    p.run_ok(CONVERT);
    p.run_ok(MERGE);
    p.run_ok(CONVERT);
    assert_everything_once(&p, &saved);
    let left = common::read_png_dirs(&p.images);
    assert!(
        left.values().all(Vec::is_empty),
        "every PNG converted: {left:?}"
    );
    let journal = p.state.join("journal");
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        0,
        "journal empty"
    );
}

/// What the stages' recovery found after the kills: [commits finished, commits undone, temp
/// files swept], counted in their logs.
fn recoveries_logged(p: &Pipeline) -> [usize; 3] {
    let mut counts = [0; 3];
    for log in ["stage2.log", "stage3.log"] {
        let text = std::fs::read_to_string(p.logs.join(log)).unwrap_or_default();
        for (i, needle) in [
            "finishing a commit",
            "undoing a commit",
            "removed temp files",
        ]
        .iter()
        .enumerate()
        {
            counts[i] += text.matches(needle).count();
        }
    }
    counts
}

fn assert_everything_once(p: &Pipeline, saved: &BTreeMap<u32, (String, Pixels)>) {
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    let everything = p.everything();
    for (cat, rows) in &everything {
        for row in rows {
            let id = id_of(row);
            let (want_cat, want) = saved
                .get(&id)
                .unwrap_or_else(|| panic!("drawing {id} was never saved"));
            assert_eq!(cat, want_cat, "drawing {id} in the wrong category");
            assert_eq!(row, want, "drawing {id}'s bytes changed");
            *seen.entry(id).or_default() += 1;
        }
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    fn first<T: std::fmt::Debug>(ids: &[T]) -> String {
        format!("{:?}", &ids[..ids.len().min(20)])
    }
    assert!(
        doubled.is_empty(),
        "{} doubled, e.g. {}",
        doubled.len(),
        first(&doubled)
    );
    let lost: Vec<_> = saved.keys().filter(|id| !seen.contains_key(id)).collect();
    assert!(
        lost.is_empty(),
        "{} lost, e.g. {}",
        lost.len(),
        first(&lost)
    );
    let rows: usize = everything.values().map(Vec::len).sum();
    assert_eq!(rows, saved.len());
}

/// Alive and not a zombie (a reparented child may wait a while to be reaped).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn a_stage_whose_parent_dies_stops_by_itself() {
    // The orchestrator SIGKILLed mid-stage: its child must not run on beside the next run.
    let p = Pipeline::new();
    for i in 0..50 {
        p.save("cat", &drawing(i));
    }
    // Hold the data lock, so the stage is still waiting for it when its parent dies.
    let dirs = doodle_pipeline::data::DataDirs {
        images: p.images.clone(),
        repo: p.repo.clone(),
        data: p.repo.join("drawings"),
        old: p.data("old"),
        new: p.data("new"),
        state: p.state.clone(),
        quarantine: p.quarantine.clone(),
    };
    let lock = dirs.lock().unwrap();
    let sh = format!("'{CONVERT}' >/dev/null 2>&1 & echo $!; sleep 0.5; kill -9 $$");
    let out = p.command("sh").args(["-c", &sh]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "{}", common::output_text(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&pid) {
        assert!(
            Instant::now() < deadline,
            "stage {pid} still runs after its parent died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(lock);
    assert_eq!(
        p.everything()["cat"].len(),
        50,
        "nothing converted, nothing lost"
    );
    p.run_ok(CONVERT);
    assert_eq!(common::read_npy(&p.data("new").join("cat.npy")).len(), 50);
}
