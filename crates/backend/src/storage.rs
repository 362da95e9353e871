//! Saved drawings: `<img_data_location>/<category>/<uuid v7>.png`, written so that concurrent
//! saves never collide and a crash or a full disk never leaves a partial PNG behind.
//!
//! The design named files by counting the folder (two concurrent saves overwrite each other) and
//! joined the category into the path unchecked. Here:
//! - the category is a [`Category`] (one path component of letters, digits, space, `_`, `-`);
//! - every file system call is relative to a directory descriptor, and the category folder is
//!   opened with `O_NOFOLLOW | O_DIRECTORY`: a symbolic link planted there is refused, so nothing
//!   is ever written outside the image folder, even if the link appears mid-save;
//! - names are UUID v7 (time-ordered, random), and the final rename refuses to replace an
//!   existing file (`RENAME_NOREPLACE`; `link` + `unlink` where the file system lacks it);
//! - the bytes go to a hidden temp file in the same folder, which is fsynced, renamed, and the
//!   folder fsynced; on any failure the temp file is removed.
//!
//! Everything here blocks: call it from `spawn_blocking`.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use doodle_core::category::Category;
use rustix::fs::{AtFlags, CWD, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the image folder {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating the folder for category `{category}`")]
    CreateFolder {
        category: String,
        #[source]
        source: io::Error,
    },
    #[error("the folder for category `{category}` is a symbolic link or not a folder")]
    UnsafeFolder { category: String },
    #[error("opening the folder for category `{category}`")]
    OpenFolder {
        category: String,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The category folder disappeared between our making it and writing into it.
    fn folder_vanished(&self) -> bool {
        matches!(self, Self::OpenFolder { source, .. } | Self::Write { source, .. }
            if source.kind() == io::ErrorKind::NotFound)
    }

    /// The kind of the underlying I/O error, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Root { source, .. }
            | Self::CreateFolder { source, .. }
            | Self::OpenFolder { source, .. }
            | Self::Write { source, .. } => Some(source.kind()),
            Self::UnsafeFolder { .. } => None,
        }
    }
}

/// Where `/save-image/` writes.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

impl ImageStore {
    /// The folder need not exist yet: it is created on the first save.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open_root(&self) -> Result<OwnedFd, StoreError> {
        let root_error = |source: io::Error| StoreError::Root {
            path: self.root.clone(),
            source,
        };
        match rustix::fs::openat(CWD, &self.root, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => {
                std::fs::create_dir_all(&self.root).map_err(root_error)?;
                rustix::fs::openat(CWD, &self.root, DIR_FLAGS, Mode::empty())
                    .map_err(|e| root_error(e.into()))
            }
            Err(e) => Err(root_error(e.into())),
        }
    }

    /// Write `png` as a new file in the category's folder and return its path
    /// (`<img_data_location>/<category>/<name>.png`, as configured).
    ///
    /// The pipeline's clean stage removes empty category folders; one removed between our
    /// opening it and writing into it is made again (up to 8 times), so no save is refused for it.
    pub fn save(&self, category: &Category, png: &[u8]) -> Result<PathBuf, StoreError> {
        let mut attempt = 0;
        loop {
            match self.save_once(category, png) {
                Err(err) if err.folder_vanished() && attempt < 8 => attempt += 1,
                other => return other,
            }
        }
    }

    fn save_once(&self, category: &Category, png: &[u8]) -> Result<PathBuf, StoreError> {
        let name = category.as_str();
        // `Category` admits only one plain path component; check it anyway, it is cheap.
        debug_assert!(matches!(
            Path::new(name).components().collect::<Vec<_>>().as_slice(),
            [std::path::Component::Normal(_)]
        ));
        let root = self.open_root()?;
        let created = match rustix::fs::mkdirat(&root, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => {
                return Err(StoreError::CreateFolder {
                    category: name.to_owned(),
                    source: e.into(),
                });
            }
        };
        let folder =
            match rustix::fs::openat(&root, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(StoreError::UnsafeFolder {
                        category: name.to_owned(),
                    });
                }
                Err(e) => {
                    return Err(StoreError::OpenFolder {
                        category: name.to_owned(),
                        source: e.into(),
                    });
                }
            };
        let folder_path = self.root.join(name);
        let file_name = write_new_file(&folder, png).map_err(|source| StoreError::Write {
            path: folder_path.clone(),
            source,
        })?;
        if created {
            // Make the new folder's entry durable too (after the file, so the moment between
            // opening the folder and creating the file in it stays as short as it can be).
            rustix::fs::fsync(&root).map_err(|e| StoreError::Write {
                path: folder_path.clone(),
                source: e.into(),
            })?;
        }
        Ok(folder_path.join(file_name))
    }
}

/// Temp file → fsync → rename without replacing → fsync the folder. Returns the final name.
fn write_new_file(folder: &OwnedFd, bytes: &[u8]) -> io::Result<String> {
    write_new_file_with(folder, |file| file.write_all(bytes))
}

/// [`write_new_file`] with the writing step given (tests inject a full disk there).
fn write_new_file_with(
    folder: &OwnedFd,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<String> {
    let tmp = format!(".{}.tmp", Uuid::new_v4().simple());
    let fd = rustix::fs::openat(
        folder,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let mut file = File::from(fd);
    let written = write(&mut file)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            publish(folder, &tmp)
        });
    match written {
        Ok(name) => {
            rustix::fs::fsync(folder)?;
            Ok(name)
        }
        Err(err) => {
            let _ = rustix::fs::unlinkat(folder, tmp.as_str(), AtFlags::empty());
            Err(err)
        }
    }
}

/// Give the temp file a fresh final name; never replaces an existing file.
fn publish(folder: &OwnedFd, tmp: &str) -> io::Result<String> {
    for _ in 0..8 {
        let name = format!("{}.png", Uuid::now_v7());
        match rustix::fs::renameat_with(folder, tmp, folder, name.as_str(), RenameFlags::NOREPLACE)
        {
            Ok(()) => return Ok(name),
            Err(Errno::EXIST) => continue,
            // File systems without RENAME_NOREPLACE: a hard link also fails on an existing name.
            Err(Errno::INVAL | Errno::NOSYS) => {
                match rustix::fs::linkat(folder, tmp, folder, name.as_str(), AtFlags::empty()) {
                    Ok(()) => {
                        rustix::fs::unlinkat(folder, tmp, AtFlags::empty())?;
                        return Ok(name);
                    }
                    Err(Errno::EXIST) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free file name after 8 tries",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(name: &str) -> Category {
        Category::parse(name).unwrap()
    }

    #[test]
    fn saves_into_a_new_category_folder_under_a_missing_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().join("a/b"));
        let path = store.save(&cat("cat"), b"png bytes").unwrap();
        assert_eq!(path.parent().unwrap(), dir.path().join("a/b/cat"));
        assert_eq!(std::fs::read(&path).unwrap(), b"png bytes");
        assert!(path.extension().is_some_and(|e| e == "png"));
    }

    #[test]
    fn names_never_repeat_and_no_temp_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let paths: std::collections::HashSet<_> = (0..50)
            .map(|i| store.save(&cat("dog"), &[i]).unwrap())
            .collect();
        assert_eq!(paths.len(), 50);
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("dog"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries.len(), 50);
        assert!(
            entries
                .iter()
                .all(|n| n.ends_with(".png") && !n.starts_with('.'))
        );
    }

    #[test]
    fn a_symlinked_category_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("cat")).unwrap();
        let err = ImageStore::new(&root).save(&cat("cat"), b"x").unwrap_err();
        assert!(matches!(err, StoreError::UnsafeFolder { .. }), "{err:?}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_write_that_fails_midway_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let folder = rustix::fs::openat(CWD, dir.path(), DIR_FLAGS, Mode::empty()).unwrap();
        let err = write_new_file_with(&folder, |file| {
            file.write_all(b"half a PNG")?;
            Err(io::Error::from(io::ErrorKind::StorageFull))
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn saves_survive_the_folder_being_removed_under_them() {
        // The pipeline's clean stage `rmdir`s empty category folders while people save.
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let remover = {
            let (folder, stop) = (dir.path().join("cat"), stop.clone());
            std::thread::spawn(move || {
                let mut removed = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if std::fs::remove_dir(&folder).is_ok() {
                        removed += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                removed
            })
        };
        for i in 0..1000u32 {
            let path = store
                .save(&cat("cat"), &i.to_le_bytes())
                .unwrap_or_else(|e| panic!("save {i}: {e:?}"));
            assert_eq!(std::fs::read(&path).unwrap(), i.to_le_bytes());
            // Empty the folder again, as stage 3 does, so the remover can strike again.
            std::fs::remove_file(&path).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let removed = remover.join().unwrap();
        assert!(removed > 0, "the folder was removed while saving");
    }

    #[test]
    fn a_file_where_the_folder_should_be_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cat"), b"not a folder").unwrap();
        let err = ImageStore::new(dir.path())
            .save(&cat("cat"), b"x")
            .unwrap_err();
        assert!(matches!(err, StoreError::UnsafeFolder { .. }), "{err:?}");
    }
}
