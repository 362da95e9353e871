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

#[test]
fn history_and_rollback_of_the_deployed_alias() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    std::fs::create_dir(&ck).unwrap();
    std::fs::write(ck.join("model.safetensors"), b"w").unwrap();
    std::fs::write(ck.join("metadata.json"), b"{}").unwrap();
    let ck = ck.display().to_string();
    let dir = tmp.path();

    assert_eq!(
        cli(dir, &["history"]),
        (Some(0), String::new(), String::new())
    );
    let (code, _, err) = cli(dir, &["rollback"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("\"champion\" is not set"), "{err}");

    cli(dir, &["register", &ck, "--deploy"]);
    cli(dir, &["register", &ck]);
    cli(dir, &["register", &ck]);
    assert_eq!(cli(dir, &["deploy", "2"]).0, Some(0));
    assert_eq!(
        cli(dir, &["deploy", "3", "--reason", "better on cats"]).0,
        Some(0)
    );
    assert_eq!(cli(dir, &["rollback"]).1, "champion: 3 -> 2");
    assert_eq!(cli(dir, &["deployed"]).1, "2");
    assert_eq!(
        cli(dir, &["rollback", "--reason", "v2 mislabels dogs"]).1,
        "champion: 2 -> 1"
    );
    assert_eq!(cli(dir, &["deployed"]).1, "1");
    let (code, _, err) = cli(dir, &["rollback"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no earlier version to roll back to"), "{err}");

    let (code, history, _) = cli(dir, &["history"]);
    assert_eq!(code, Some(0));
    let rows: Vec<Vec<&str>> = history
        .lines()
        .map(|l| l.split('\t').skip(1).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "1",
                "-",
                "doodle-registry register",
                "registered with --deploy"
            ],
            vec!["2", "1", "doodle-registry deploy", "deployed by hand"],
            vec!["3", "2", "doodle-registry deploy", "better on cats"],
            vec![
                "2",
                "3",
                "doodle-registry rollback",
                "rollback from version 3"
            ],
            vec![
                "1",
                "2",
                "doodle-registry rollback",
                "rollback from version 2: v2 mislabels dogs"
            ],
        ]
    );
    assert!(history.lines().all(|l| l.starts_with("20")), "{history}");
}
