//! The `Registry` enum over the local registry, built from settings as the pipeline builds it.

use std::collections::BTreeMap;
use std::path::Path;

use doodle_core::Settings;
use doodle_registry::{Registry, RegistryError, RunRecord};

fn checkpoint(dir: &Path, marker: &str) -> std::path::PathBuf {
    let ck = dir.join(format!("ck-{marker}"));
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::write(ck.join("model.safetensors"), marker).unwrap();
    std::fs::write(ck.join("metadata.json"), "{}").unwrap();
    ck
}

#[tokio::test]
async fn registry_from_settings_registers_moves_and_rolls_back_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.registry.local_dir = tmp.path().join("registry");
    let registry = Registry::from_settings(&settings).unwrap();
    assert!(matches!(registry, Registry::Local(_)));
    assert_eq!(registry.name(), "doodle-classifier");

    let record = RunRecord {
        tags: BTreeMap::from([("data_commit".into(), "abc".into())]),
        ..RunRecord::default()
    };
    let v1 = registry
        .register(&checkpoint(tmp.path(), "a"), &record)
        .await
        .unwrap();
    let v2 = registry
        .register(&checkpoint(tmp.path(), "b"), &record)
        .await
        .unwrap();
    assert_eq!((v1.as_str(), v2.as_str()), ("1", "2"));
    assert_eq!(
        registry.deployed("champion").await.unwrap(),
        None,
        "not moved"
    );
    let dir = registry.version_dir("2").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("model.safetensors")).unwrap(),
        "b"
    );

    registry
        .move_alias("champion", "1", "pipeline run 1", "first")
        .await
        .unwrap();
    let event = registry
        .move_alias("champion", "2", "pipeline run 2", "promoted by the gate")
        .await
        .unwrap();
    assert_eq!(event.previous.as_deref(), Some("1"));
    assert_eq!(
        registry.alias_version("champion").await.unwrap().as_deref(),
        Some("2")
    );
    let deployed = registry.deployed("champion").await.unwrap().unwrap();
    assert_eq!((deployed.version.as_str(), deployed.dir), ("2", dir));

    registry
        .set_version_tag("2", "gate", "promoted")
        .await
        .unwrap();
    let Registry::Local(local) = &registry else {
        unreachable!()
    };
    let tags = local.version(2).unwrap().tags;
    assert_eq!(tags["gate"], "promoted");
    assert_eq!(tags["data_commit"], "abc");

    let back = registry.rollback("champion", "test").await.unwrap();
    assert_eq!(
        (back.version.as_str(), back.reason.as_str()),
        ("1", "rollback from version 2")
    );
    let history = registry.alias_history("champion").await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2], back);

    assert!(matches!(
        registry.move_alias("champion", "two", "x", "").await,
        Err(RegistryError::Invalid(m)) if m.contains("not a version number")
    ));
    assert!(matches!(
        registry.version_dir("9").await,
        Err(RegistryError::NoSuchVersion { version: 9, .. })
    ));
}
