//! The `doodle-registry` CLI over the local registry, as `make model` and `make run` use it.

use std::process::Command;

fn cli(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_doodle-registry"))
        .args(args)
        .env_remove("DOODLE_CONFIG")
        .env("DOODLE_REGISTRY__LOCAL_DIR", dir.join("registry"))
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[test]
fn register_deploy_and_list_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    std::fs::create_dir(&ck).unwrap();
    std::fs::write(ck.join("model.safetensors"), b"w").unwrap();
    std::fs::write(ck.join("metadata.json"), b"{}").unwrap();
    let ck = ck.display().to_string();

    assert_eq!(
        cli(tmp.path(), &["deployed"]).0,
        Some(1),
        "nothing deployed yet"
    );
    assert_eq!(
        cli(
            tmp.path(),
            &["register", &ck, "--deploy", "--tag", "source=test"]
        )
        .1,
        "registered version 1 and deployed it as \"champion\""
    );
    assert_eq!(
        cli(tmp.path(), &["register", &ck]).1,
        "registered version 2"
    );
    assert_eq!(
        cli(tmp.path(), &["deployed"]),
        (Some(0), "1".into(), String::new())
    );
    assert_eq!(cli(tmp.path(), &["deploy", "2"]).0, Some(0));
    assert_eq!(cli(tmp.path(), &["deployed"]).1, "2");
    let list = cli(tmp.path(), &["list"]).1;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[1].starts_with("2\t") && lines[1].ends_with("<- champion"),
        "{list}"
    );

    let (code, _, err) = cli(tmp.path(), &["deploy", "9"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("has no version 9"), "{err}");
    let (code, _, err) = cli(tmp.path(), &["register", "/nonexistent"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("/nonexistent is not a checkpoint folder"),
        "{err}"
    );
}
