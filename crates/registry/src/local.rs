//! The local directory registry.
//!
//! ```text
//! <root>/<model name>/
//!     versions/<n>/            the checkpoint files, copied in, plus `version.json`
//!     aliases/<alias>          a file holding a version number
//! ```
//! Versions are staged in a hidden folder and renamed into place under the next free number
//! (a rename onto a non-empty directory fails, so two writers never share a number). Aliases
//! are written to a temporary file and renamed over the old one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Deployed, RegistryError, Result};

const RECORD: &str = "version.json";

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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatting the current time cannot fail. This is a bug.")
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

    /// Point `alias` at `version` (which must exist).
    pub fn set_alias(&self, alias: &str, version: u64) -> Result<()> {
        valid_name("alias", alias)?;
        self.version(version)?;
        let dir = self.aliases_dir();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        write_atomic(&dir.join(alias), version.to_string().as_bytes())
    }

    /// The version `alias` names, if it is set.
    pub fn alias(&self, alias: &str) -> Result<Option<ModelVersion>> {
        valid_name("alias", alias)?;
        let path = self.aliases_dir().join(alias);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        let version = text.trim().parse::<u64>().map_err(|_| {
            RegistryError::Invalid(format!(
                "{}: alias file does not hold a version number",
                path.display()
            ))
        })?;
        self.version(version).map(Some)
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
}
