//! The data stages as binaries, on real folders, real git and real DVC.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use common::{Pipeline, drawing, output_text, read_npy};

const SCAN: &str = env!("CARGO_BIN_EXE_stage1-scan");
const MERGE: &str = env!("CARGO_BIN_EXE_stage2-merge");
const CONVERT: &str = env!("CARGO_BIN_EXE_stage3-convert");
const VERSION: &str = env!("CARGO_BIN_EXE_stage4-version");
const CLEAN: &str = env!("CARGO_BIN_EXE_stage7-clean");

fn result_line(text: &str) -> serde_json::Value {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("result: "))
        .unwrap_or_else(|| panic!("no result line in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn scan_counts_drawings_per_category_and_skips_what_is_not_one() {
    let p = Pipeline::new();
    for i in 0..3 {
        p.save("cat", &drawing(i));
    }
    p.save("hot dog", &drawing(9));
    std::fs::write(p.images.join("cat/notes.txt"), b"not a drawing").unwrap();
    std::fs::write(p.images.join("cat/.0190.tmp"), b"a save in progress").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.png"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path(), p.images.join("linked")).unwrap();
    std::fs::write(p.images.join("dog"), b"a file where a folder should be").unwrap();
    let text = p.run_ok(SCAN);
    assert_eq!(result_line(&text)["new_images"], 4, "{text}");
    assert!(text.contains("skipping symbolic link"), "{text}");
    assert!(text.contains("skipping file"), "{text}");
    let log = std::fs::read_to_string(p.logs.join("stage1.log")).unwrap();
    assert!(
        log.contains("category=\"hot dog\"") || log.contains("hot dog"),
        "{log}"
    );
}

#[test]
fn scan_of_a_missing_image_folder_is_zero() {
    let p = Pipeline::new();
    assert_eq!(result_line(&p.run_ok(SCAN))["new_images"], 0);
}

#[test]
fn convert_appends_every_drawing_once_and_quarantines_what_it_cannot_read() {
    let p = Pipeline::new();
    let saved: Vec<_> = (0..5).map(drawing).collect();
    for d in &saved[..3] {
        p.save("cat", d);
    }
    p.run_ok(CONVERT);
    for d in &saved[3..] {
        p.save("cat", d);
    }
    p.save("new thing", &drawing(77));
    let broken = p.images.join("cat/broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n not really").unwrap();
    let text = p.run_ok(CONVERT);

    let rows = read_npy(&p.data("new").join("cat.npy"));
    let mut ids: Vec<u32> = rows.iter().map(common::id_of).collect();
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    for row in &rows {
        assert_eq!(row, &drawing(common::id_of(row)), "bytes survive PNG → npy");
    }
    assert_eq!(
        read_npy(&p.data("new").join("new thing.npy")),
        [drawing(77)]
    );
    assert!(!broken.exists());
    assert!(p.quarantine.join("cat/broken.png").is_file());
    assert!(
        text.contains("quarantined") && text.contains("broken.png"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(p.images.join("cat")).unwrap().collect();
    assert!(left.is_empty(), "every PNG consumed: {left:?}");
}

#[test]
fn convert_never_follows_a_link_out_of_the_image_folder() {
    let p = Pipeline::new();
    p.save("cat", &drawing(1));
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.png");
    std::fs::write(&secret, doodle_core::image::png_from_pixels(&drawing(2))).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.images.join("linked")).unwrap();
    std::os::unix::fs::symlink(&secret, p.images.join("cat/link.png")).unwrap();
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9");
    std::fs::create_dir_all(p.images.join(raw)).unwrap();
    p.save("cat", &drawing(3));
    p.run_ok(CONVERT);
    let rows = read_npy(&p.data("new").join("cat.npy"));
    assert_eq!(rows.len(), 2);
    assert!(secret.is_file(), "a file outside is never moved or removed");
    assert!(!p.data("new").join("linked.npy").exists());
}

#[test]
fn merge_moves_new_categories_and_stacks_known_ones_old_rows_first() {
    let p = Pipeline::new();
    p.save("cat", &drawing(1));
    p.run_ok(CONVERT);
    p.run_ok(MERGE);
    assert_eq!(read_npy(&p.data("old").join("cat.npy")), [drawing(1)]);
    assert!(!p.data("new").join("cat.npy").exists());

    p.save("cat", &drawing(2));
    p.save("dog", &drawing(3));
    p.run_ok(CONVERT);
    let text = p.run_ok(MERGE);
    assert_eq!(
        read_npy(&p.data("old").join("cat.npy")),
        [drawing(1), drawing(2)]
    );
    assert_eq!(read_npy(&p.data("old").join("dog.npy")), [drawing(3)]);
    let new_left: Vec<_> = std::fs::read_dir(p.data("new")).unwrap().collect();
    assert!(new_left.is_empty(), "{new_left:?}");
    assert!(text.contains("1 categories moved, 1 stacked"), "{text}");
}

#[test]
fn merge_fails_on_a_corrupt_data_file_and_names_it() {
    let p = Pipeline::new();
    std::fs::create_dir_all(p.data("new")).unwrap();
    std::fs::write(p.data("new").join("cat.npy"), b"\x93NUMPY garbage").unwrap();
    let out = p.command(MERGE).output().unwrap();
    let text = output_text(&out);
    assert!(!out.status.success());
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("failure: ") && last.contains("cat.npy"),
        "{text}"
    );
}

fn git(p: &Pipeline, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(&p.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn version_commits_the_data_with_dvc_and_an_unchanged_folder_is_success() {
    let p = Pipeline::new();
    p.save("cat", &drawing(1));
    p.run_ok(CONVERT);
    let text = p.run_ok(VERSION);
    let result = result_line(&text);
    let head = git(&p, &["rev-parse", "HEAD"]);
    assert_eq!(result["data_commit"], head.as_str());
    let dvc_file = std::fs::read_to_string(p.repo.join("drawings.dvc")).unwrap();
    let hash = result["data_hash"].as_str().unwrap();
    assert!(
        hash.ends_with(".dir") && dvc_file.contains(hash),
        "{dvc_file}"
    );
    assert_eq!(
        git(&p, &["log", "-1", "--format=%s"]),
        "Update tracked data in drawings"
    );
    assert_eq!(
        git(&p, &["status", "--porcelain"]),
        "",
        "nothing left uncommitted"
    );
    let status = Command::new(common::dvc())
        .args(["status"])
        .current_dir(&p.repo)
        .output()
        .unwrap();
    assert!(
        output_text(&status).contains("up to date"),
        "{}",
        output_text(&status)
    );

    let again = p.run_ok(VERSION);
    assert_eq!(
        result_line(&again)["data_commit"],
        head.as_str(),
        "no new commit"
    );
    assert!(again.contains("nothing to commit"), "{again}");

    p.save("cat", &drawing(2));
    p.run_ok(CONVERT);
    let third = result_line(&p.run_ok(VERSION));
    assert_ne!(third["data_commit"], head.as_str());
    assert_ne!(third["data_hash"], hash);
}

#[test]
fn version_pushes_to_a_local_remote() {
    let remote = tempfile::tempdir().unwrap();
    let p = Pipeline::with_config(&format!("dvc_remote = {:?}", remote.path()));
    p.save("cat", &drawing(1));
    p.run_ok(CONVERT);
    p.run_ok(VERSION);
    let files = walk_files(remote.path());
    assert!(
        files >= 2,
        "the remote holds the folder listing and the file ({files})"
    );
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { walk_files(&path) } else { 1 }
        })
        .sum()
}

#[test]
fn version_without_dvc_says_which_tool_and_how_to_install_it() {
    let p = Pipeline::new();
    let out = p
        .command(VERSION)
        .env("DOODLE_PIPELINE__DVC_COMMAND", "no-such-dvc-here")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("`no-such-dvc-here` was not found"), "{text}");
    assert!(text.contains("pip install dvc"), "{text}");
    let out = p
        .command(VERSION)
        .env("DOODLE_PIPELINE__GIT_COMMAND", "/no/git")
        .output()
        .unwrap();
    assert!(
        output_text(&out).contains("apt-get install git"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn clean_removes_only_empty_category_folders_inside_the_image_folder() {
    let p = Pipeline::new();
    p.save("cat", &drawing(1));
    std::fs::create_dir_all(p.images.join("empty")).unwrap();
    std::fs::create_dir_all(p.images.join("busy")).unwrap();
    std::fs::write(p.images.join("busy/.0190.tmp"), b"a save in progress").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_empty = outside.path().join("empty-outside");
    std::fs::create_dir(&outside_empty).unwrap();
    std::os::unix::fs::symlink(&outside_empty, p.images.join("link")).unwrap();
    p.run_ok(CLEAN);
    assert!(!p.images.join("empty").exists());
    assert!(
        p.images.join("busy").is_dir(),
        "a folder with a save in progress stays"
    );
    assert!(
        p.images.join("cat").is_dir(),
        "a folder with drawings stays"
    );
    assert!(outside_empty.is_dir(), "nothing outside is touched");
    assert!(p.images.join("link").is_symlink());
}
