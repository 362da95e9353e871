//! The local directory registry.
//!
//! ```text
//! <root>/<model name>/
//!     versions/<n>/            the checkpoint files, copied in, plus `version.json`
//!     aliases/<alias>          a file holding a version number
//!     history/<alias>.jsonl    every move of the alias, one JSON `AliasEvent` a line
//!     registry.lock            held (`flock`) while an alias moves or a version's tags change
//! ```
//! Versions are staged in a hidden folder and renamed into place under the next free number
//! (a rename onto a non-empty directory fails, so two writers never share a number). Aliases
//! are written to a temporary file and renamed over the old one.
//!
//! Moving an alias takes the lock, renames the new alias file into place, then appends one
//! line to its history and fsyncs it, so concurrent movers (threads or processes) never lose
//! an event and each event's `previous` is the version its mover replaced. A crash between
//! the two writes leaves the alias moved and the event missing (the alias is the truth the
//! model server follows); a crash mid-append leaves a torn last line, which readers ignore and
//! the next append cuts off.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::history::{self, AliasEvent, now_rfc3339};
use crate::{Deployed, RegistryError, Result};

const RECORD: &str = "version.json";
const LOCK: &str = "registry.lock";

/// Registry bookkeeping for one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u64,
    pub created_at: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where the checkpoint files live (filled in when read; not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LocalRegistry {
    model_dir: PathBuf,
    name: String,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io {
        action,
        path,
        source,
    }
}

fn valid_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{kind} {name:?} must be 1-128 characters of letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", path))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(io("creating", to))?;
    for entry in fs::read_dir(from).map_err(io("reading", from))? {
        let entry = entry.map_err(io("reading", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io("reading", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io("copying", &src))?;
            fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &dst))?;
        } else {
            return Err(RegistryError::Invalid(format!(
                "{} is neither a file nor a folder; checkpoints hold plain files",
                src.display()
            )));
        }
    }
    sync_dir(to)
}

/// Write `bytes` to `path` atomically: temporary file in the same folder, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .expect("registry paths have a parent. This is a bug.");
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io("writing", path))?;
    sync_dir(dir)
}

impl LocalRegistry {
    /// A registry for model `name` under `root` (created on first write).
    pub fn new(root: impl AsRef<Path>, name: &str) -> Result<Self> {
        valid_name("model name", name)?;
        Ok(Self {
            model_dir: root.as_ref().join(name),
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn versions_dir(&self) -> PathBuf {
        self.model_dir.join("versions")
    }

    fn aliases_dir(&self) -> PathBuf {
        self.model_dir.join("aliases")
    }

    /// Copy a checkpoint directory in as the next version.
    pub fn register(
        &self,
        checkpoint: &Path,
        tags: BTreeMap<String, String>,
    ) -> Result<ModelVersion> {
        if !checkpoint.is_dir() {
            return Err(RegistryError::Invalid(format!(
                "{} is not a checkpoint folder",
                checkpoint.display()
            )));
        }
        let versions = self.versions_dir();
        fs::create_dir_all(&versions).map_err(io("creating", &versions))?;
        let staging = self
            .model_dir
            .join(format!(".staging-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            copy_tree(checkpoint, &staging)?;
            let mut record = ModelVersion {
                name: self.name.clone(),
                version: 0,
                created_at: now_rfc3339(),
                tags,
                dir: PathBuf::new(),
            };
            loop {
                record.version = self.latest_number()? + 1;
                let json = serde_json::to_vec_pretty(&record)
                    .expect("a version record serialises. This is a bug.");
                write_atomic(&staging.join(RECORD), &json)?;
                let target = versions.join(record.version.to_string());
                match fs::rename(&staging, &target) {
                    Ok(()) => {
                        sync_dir(&versions)?;
                        record.dir = target;
                        return Ok(record);
                    }
                    // Another writer took this number first: try the next one.
                    Err(err)
                        if target.exists()
                            || err.kind() == std::io::ErrorKind::DirectoryNotEmpty =>
                    {
                        continue;
                    }
                    Err(err) => return Err(io("renaming", &target)(err)),
                }
            }
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    fn latest_number(&self) -> Result<u64> {
        Ok(self.version_numbers()?.into_iter().max().unwrap_or(0))
    }

    fn version_numbers(&self) -> Result<Vec<u64>> {
        let dir = self.versions_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io("reading", &dir)(err)),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("reading", &dir))?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
            {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// One version's record.
    pub fn version(&self, version: u64) -> Result<ModelVersion> {
        let dir = self.versions_dir().join(version.to_string());
        let path = dir.join(RECORD);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::NoSuchVersion {
                    model: self.name.clone(),
                    version,
                });
            }
            Err(err) => return Err(io("reading", &path)(err)),
        };
        let mut record: ModelVersion = serde_json::from_slice(&bytes)
            .map_err(|source| RegistryError::Corrupt { path, source })?;
        record.dir = dir;
        Ok(record)
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> Result<Vec<ModelVersion>> {
        self.version_numbers()?
            .into_iter()
            .map(|n| self.version(n))
            .collect()
    }

    /// Point `alias` at `version` (which must exist); the history records it as moved by
    /// `set_alias`, without a reason ([`move_alias`](Self::move_alias) says who and why).
    pub fn set_alias(&self, alias: &str, version: u64) -> Result<()> {
        self.move_alias(alias, version, "set_alias", "").map(drop)
    }

    /// Point `alias` at `version` (which must exist) and record the move in its history.
    pub fn move_alias(
        &self,
        alias: &str,
        version: u64,
        by: &str,
        reason: &str,
    ) -> Result<AliasEvent> {
        valid_name("alias", alias)?;
        let _lock = self.lock()?;
        self.move_locked(alias, version, by, reason, false)
    }

    /// Every recorded move of `alias`, oldest first (empty when it never moved).
    pub fn alias_history(&self, alias: &str) -> Result<Vec<AliasEvent>> {
        valid_name("alias", alias)?;
        let path = self.history_path(alias);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        history::parse_lines(&bytes).map_err(|source| RegistryError::Corrupt { path, source })
    }

    /// Move `alias` back to the previous champion (which one: see [`crate::history`]); the
    /// move is recorded with the reason "rollback from version N".
    pub fn rollback(&self, alias: &str, by: &str) -> Result<AliasEvent> {
        self.rollback_with_reason(alias, by, "")
    }

    /// [`rollback`](Self::rollback), with `note` added to the recorded reason.
    pub fn rollback_with_reason(&self, alias: &str, by: &str, note: &str) -> Result<AliasEvent> {
        valid_name("alias", alias)?;
        let _lock = self.lock()?;
        let current = self.alias_number(alias)?.ok_or_else(|| {
            RegistryError::Invalid(format!("alias {alias:?} is not set: nothing to roll back"))
        })?;
        let history = self.alias_history(alias)?;
        let current = current.to_string();
        let target = history::rollback_target(alias, &history, &current)?;
        let target = target.parse::<u64>().map_err(|_| {
            RegistryError::Invalid(format!(
                "{}: the history names version {target:?}, which is not a number",
                self.history_path(alias).display()
            ))
        })?;
        let reason = history::rollback_reason(&current, note);
        self.move_locked(alias, target, by, &reason, true)
    }

    /// Set one tag in a version's record (`version.json`), replacing its old value.
    pub fn set_version_tag(&self, version: u64, key: &str, value: &str) -> Result<()> {
        if key.is_empty() {
            return Err(RegistryError::Invalid("a tag needs a key".into()));
        }
        let _lock = self.lock()?;
        let mut record = self.version(version)?;
        record.tags.insert(key.to_owned(), value.to_owned());
        let json = serde_json::to_vec_pretty(&record)
            .expect("a version record serialises. This is a bug.");
        write_atomic(&record.dir.join(RECORD), &json)
    }

    /// The version `alias` names, if it is set.
    pub fn alias(&self, alias: &str) -> Result<Option<ModelVersion>> {
        valid_name("alias", alias)?;
        self.alias_number(alias)?
            .map(|version| self.version(version))
            .transpose()
    }

    /// The number in `alias`'s file, if it is set (the version may since have gone).
    fn alias_number(&self, alias: &str) -> Result<Option<u64>> {
        let path = self.aliases_dir().join(alias);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        text.trim().parse::<u64>().map(Some).map_err(|_| {
            RegistryError::Invalid(format!(
                "{}: alias file does not hold a version number",
                path.display()
            ))
        })
    }

    fn history_path(&self, alias: &str) -> PathBuf {
        self.model_dir
            .join("history")
            .join(format!("{alias}.jsonl"))
    }

    /// Hold the model's lock until the returned file is dropped.
    fn lock(&self) -> Result<fs::File> {
        fs::create_dir_all(&self.model_dir).map_err(io("creating", &self.model_dir))?;
        let path = self.model_dir.join(LOCK);
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening", &path))?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(io("locking", &path)(errno.into())),
            }
        }
    }

    /// Move the alias and append the event; the caller holds the lock.
    fn move_locked(
        &self,
        alias: &str,
        version: u64,
        by: &str,
        reason: &str,
        rollback: bool,
    ) -> Result<AliasEvent> {
        self.version(version)?;
        let previous = self.alias_number(alias)?.map(|v| v.to_string());
        let dir = self.aliases_dir();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        write_atomic(&dir.join(alias), version.to_string().as_bytes())?;
        let event = AliasEvent {
            rollback,
            ..AliasEvent::now(alias, version.to_string(), previous, by, reason)
        };
        self.append_history(&event)?;
        Ok(event)
    }

    /// Append one line and fsync it, cutting off a torn last line first; the caller holds
    /// the lock.
    fn append_history(&self, event: &AliasEvent) -> Result<()> {
        let path = self.history_path(&event.alias);
        let dir = path
            .parent()
            .expect("history paths have a parent. This is a bug.");
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let mut line = serde_json::to_vec(event).expect("an event serialises. This is a bug.");
        line.push(b'\n');
        let created = !path.exists();
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let whole = history::complete_len(&bytes);
            if whole < bytes.len() {
                file.set_len(whole as u64)?;
            }
            file.seek(SeekFrom::Start(whole as u64))?;
            file.write_all(&line)?;
            file.sync_all()
        })();
        result.map_err(io("appending to", &path))?;
        if created {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// What the model server should serve: the version `alias` names.
    pub fn deployed(&self, alias: &str) -> Result<Option<Deployed>> {
        Ok(self.alias(alias)?.map(|v| Deployed {
            version: v.version.to_string(),
            dir: v.dir,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(dir: &Path, marker: &str) -> PathBuf {
        let ck = dir.join(format!("ck-{marker}"));
        fs::create_dir_all(&ck).unwrap();
        fs::write(ck.join("model.safetensors"), marker).unwrap();
        fs::write(ck.join("metadata.json"), "{}").unwrap();
        ck
    }

    #[test]
    fn register_numbers_versions_and_copies_files() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LocalRegistry::new(tmp.path().join("reg"), "doodle").unwrap();
        let mut tags = BTreeMap::new();
        tags.insert("deployment".into(), "candidate".into());
        let v1 = reg
            .register(&checkpoint(tmp.path(), "a"), tags.clone())
            .unwrap();
        let v2 = reg
            .register(&checkpoint(tmp.path(), "b"), BTreeMap::new())
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(
            fs::read_to_string(v2.dir.join("model.safetensors")).unwrap(),
            "b"
        );
        let again = reg.version(1).unwrap();
        assert_eq!(again.tags, tags);
        assert_eq!(again.dir, v1.dir);
        assert_eq!(reg.versions().unwrap().len(), 2);
    }

    #[test]
    fn alias_moves_and_names_a_whole_version() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LocalRegistry::new(tmp.path(), "doodle").unwrap();
        assert_eq!(reg.deployed("champion").unwrap(), None);
        reg.register(&checkpoint(tmp.path(), "a"), BTreeMap::new())
            .unwrap();
        reg.register(&checkpoint(tmp.path(), "b"), BTreeMap::new())
            .unwrap();
        reg.set_alias("champion", 1).unwrap();
        assert_eq!(reg.deployed("champion").unwrap().unwrap().version, "1");
        reg.set_alias("champion", 2).unwrap();
        let d = reg.deployed("champion").unwrap().unwrap();
        assert_eq!(d.version, "2");
        assert_eq!(
            fs::read_to_string(d.dir.join("model.safetensors")).unwrap(),
            "b"
        );
    }

    #[test]
    fn alias_to_a_missing_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LocalRegistry::new(tmp.path(), "doodle").unwrap();
        assert!(matches!(
            reg.set_alias("champion", 7),
            Err(RegistryError::NoSuchVersion { version: 7, .. })
        ));
    }

    #[test]
    fn hostile_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(LocalRegistry::new(tmp.path(), "../x").is_err());
        assert!(LocalRegistry::new(tmp.path(), "").is_err());
        let reg = LocalRegistry::new(tmp.path(), "doodle").unwrap();
        assert!(reg.alias("../../etc/passwd").is_err());
    }

    #[test]
    fn concurrent_registrations_never_share_a_number() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("reg");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                let ck = checkpoint(tmp.path(), &i.to_string());
                std::thread::spawn(move || {
                    LocalRegistry::new(root, "doodle")
                        .unwrap()
                        .register(&ck, BTreeMap::new())
                        .unwrap()
                        .version
                })
            })
            .collect();
        let mut numbers: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
        let reg = LocalRegistry::new(&root, "doodle").unwrap();
        let mut markers: Vec<String> = reg
            .versions()
            .unwrap()
            .iter()
            .map(|v| fs::read_to_string(v.dir.join("model.safetensors")).unwrap())
            .collect();
        markers.sort();
        assert_eq!(markers, (0..8).map(|i| i.to_string()).collect::<Vec<_>>());
        // no staging leftovers
        let leftovers = fs::read_dir(root.join("doodle"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    /// A registry with `n` versions.
    fn with_versions(tmp: &Path, n: usize) -> LocalRegistry {
        let reg = LocalRegistry::new(tmp.join("reg"), "doodle").unwrap();
        for i in 0..n {
            reg.register(&checkpoint(tmp, &i.to_string()), BTreeMap::new())
                .unwrap();
        }
        reg
    }

    fn versions_of(history: &[AliasEvent]) -> Vec<&str> {
        history.iter().map(|e| e.version.as_str()).collect()
    }

    #[test]
    fn alias_history_records_who_moved_it_and_why() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 2);
        assert_eq!(reg.alias_history("champion").unwrap(), []);
        let first = reg
            .move_alias("champion", 1, "pipeline run 1", "first model")
            .unwrap();
        let second = reg
            .move_alias("champion", 2, "pipeline run 2", "promoted by the gate")
            .unwrap();
        assert_eq!(
            (first.previous, second.previous.as_deref()),
            (None, Some("1"))
        );
        let history = reg.alias_history("champion").unwrap();
        assert_eq!(versions_of(&history), ["1", "2"]);
        assert_eq!(history[1], second);
        assert_eq!(
            (history[1].by.as_str(), history[1].reason.as_str()),
            ("pipeline run 2", "promoted by the gate")
        );
        assert!(history[1].at.ends_with('Z') && history[1].at.starts_with("20"));
        assert_eq!(reg.deployed("champion").unwrap().unwrap().version, "2");
        // set_alias keeps working and is recorded too.
        reg.set_alias("champion", 1).unwrap();
        let last = reg.alias_history("champion").unwrap().pop().unwrap();
        assert_eq!(
            (last.version.as_str(), last.by.as_str()),
            ("1", "set_alias")
        );
    }

    #[test]
    fn rollback_walks_back_through_earlier_champions_and_records_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 3);
        for v in 1..=3 {
            reg.move_alias("champion", v, "test", "promoted").unwrap();
        }
        let back = reg
            .rollback("champion", "doodle-registry rollback")
            .unwrap();
        assert_eq!(
            (
                back.version.as_str(),
                back.previous.as_deref(),
                back.rollback
            ),
            ("2", Some("3"), true)
        );
        assert_eq!(back.reason, "rollback from version 3");
        assert_eq!(back.by, "doodle-registry rollback");
        assert_eq!(reg.deployed("champion").unwrap().unwrap().version, "2");
        let back = reg
            .rollback_with_reason("champion", "me", "v2 is slow")
            .unwrap();
        assert_eq!(back.version, "1");
        assert_eq!(back.reason, "rollback from version 2: v2 is slow");
        let err = reg.rollback("champion", "me").unwrap_err();
        assert!(
            matches!(&err, RegistryError::Invalid(m) if m.contains("has no earlier version to roll back to")),
            "{err}"
        );
        let history = reg.alias_history("champion").unwrap();
        assert_eq!(versions_of(&history), ["1", "2", "3", "2", "1"]);
        assert_eq!(reg.deployed("champion").unwrap().unwrap().version, "1");
    }

    #[test]
    fn rollback_needs_an_alias_and_an_earlier_version_that_still_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 2);
        let err = reg.rollback("champion", "me").unwrap_err();
        assert!(err.to_string().contains("is not set"), "{err}");
        reg.move_alias("champion", 1, "me", "").unwrap();
        let err = reg.rollback("champion", "me").unwrap_err();
        assert!(err.to_string().contains("no earlier version"), "{err}");
        reg.move_alias("champion", 2, "me", "").unwrap();
        fs::remove_dir_all(reg.versions_dir().join("1")).unwrap();
        let err = reg.rollback("champion", "me").unwrap_err();
        assert!(
            matches!(err, RegistryError::NoSuchVersion { version: 1, .. }),
            "{err}"
        );
        assert_eq!(reg.deployed("champion").unwrap().unwrap().version, "2");
    }

    #[test]
    fn a_torn_last_history_line_is_ignored_then_cut_off() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 2);
        reg.move_alias("champion", 1, "me", "a").unwrap();
        reg.move_alias("champion", 2, "me", "b").unwrap();
        let path = reg.history_path("champion");
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"alias":"champion","version":"1","prev"#)
            .unwrap();
        drop(file);
        assert_eq!(
            versions_of(&reg.alias_history("champion").unwrap()),
            ["1", "2"]
        );
        reg.move_alias("champion", 1, "me", "c").unwrap();
        let history = reg.alias_history("champion").unwrap();
        assert_eq!(versions_of(&history), ["1", "2", "1"]);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_bad_whole_history_line_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 1);
        reg.move_alias("champion", 1, "me", "").unwrap();
        let path = reg.history_path("champion");
        let good = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("not json\n{good}")).unwrap();
        let err = reg.alias_history("champion").unwrap_err();
        assert!(
            matches!(&err, RegistryError::Corrupt { path: p, .. } if *p == path),
            "{err}"
        );
    }

    #[test]
    fn concurrent_moves_keep_every_event_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 4);
        let threads: Vec<_> = (1..=4u64)
            .map(|v| {
                // A registry of its own, as another process would have.
                let reg = LocalRegistry::new(tmp.path().join("reg"), "doodle").unwrap();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        reg.move_alias("champion", v, &format!("thread {v}"), &i.to_string())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let history = reg.alias_history("champion").unwrap();
        assert_eq!(history.len(), 40);
        for v in 1..=4 {
            let by = format!("thread {v}");
            let reasons: Vec<&str> = history
                .iter()
                .filter(|e| e.by == by)
                .map(|e| e.reason.as_str())
                .collect();
            assert_eq!(reasons, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        }
        // Each event replaced exactly what the one before it set.
        assert_eq!(history[0].previous, None);
        for pair in history.windows(2) {
            assert_eq!(pair[1].previous.as_deref(), Some(pair[0].version.as_str()));
        }
        let deployed = reg.deployed("champion").unwrap().unwrap().version;
        assert_eq!(deployed, history[39].version);
    }

    #[test]
    fn version_tags_can_be_set_after_registration() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = with_versions(tmp.path(), 1);
        reg.set_version_tag(1, "gate", "promoted").unwrap();
        reg.set_version_tag(1, "gate", "refused").unwrap();
        reg.set_version_tag(1, "data_commit", "abc").unwrap();
        let tags = reg.version(1).unwrap().tags;
        assert_eq!(
            tags,
            BTreeMap::from([
                ("data_commit".to_owned(), "abc".to_owned()),
                ("gate".to_owned(), "refused".to_owned())
            ])
        );
        assert!(matches!(
            reg.set_version_tag(5, "gate", "x"),
            Err(RegistryError::NoSuchVersion { version: 5, .. })
        ));
    }
}
