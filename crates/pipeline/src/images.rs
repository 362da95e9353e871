//! The image folder as the backend leaves it: `<img dir>/<category>/<uuid>.png`.
//!
//! One listing for stages 1, 3 and 7, so they agree on what a drawing is. People (and
//! attackers) can put anything there, so entries are taken only when they are what they should
//! be, and everything else is skipped with one log line, never followed:
//! - a category is a real folder (not a symbolic link) whose name is valid UTF-8 and a valid
//!   [`Category`];
//! - a drawing is a regular file (not a link, not a folder) named `*.png` in such a folder;
//!   hidden files are the backend's saves in progress and are passed over silently.

use std::fs::{DirEntry, FileType};
use std::io;
use std::path::{Path, PathBuf};

use doodle_core::category::Category;

/// One category folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryDir {
    pub category: Category,
    pub path: PathBuf,
}

/// One saved drawing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drawing {
    pub name: String,
    pub path: PathBuf,
}

/// The category folders of `root`, sorted by name. A missing root has none.
pub fn categories(root: &Path) -> io::Result<Vec<CategoryDir>> {
    let mut out = Vec::new();
    for entry in read_dir_or_empty(root)? {
        let entry = entry?;
        let Some(name) = utf8_name(&entry, "folder") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        if !file_type.is_dir() {
            skip(
                &entry.path(),
                describe(file_type),
                "is not a category folder",
            );
            continue;
        }
        match Category::parse(&name) {
            Ok(category) => out.push(CategoryDir {
                category,
                path: entry.path(),
            }),
            Err(e) => skip(&entry.path(), "folder", &e.to_string()),
        }
    }
    out.sort_by(|a, b| a.category.cmp(&b.category));
    Ok(out)
}

/// The drawings in one category folder, read lazily (directory order), so a folder of a
/// million drawings costs no more memory than one of ten. A drawing saved while this runs may
/// or may not be listed; one removed meanwhile may still be (opening it then finds nothing).
pub fn drawings(dir: &CategoryDir) -> io::Result<impl Iterator<Item = io::Result<Drawing>>> {
    let entries = match std::fs::read_dir(&dir.path) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(entries
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.and_then(|entry| as_drawing(&entry)).transpose()))
}

/// The next `n` drawings of `list`, sorted by name (UUID v7 names: oldest first).
pub fn next_chunk(
    list: &mut impl Iterator<Item = io::Result<Drawing>>,
    n: usize,
) -> io::Result<Vec<Drawing>> {
    let mut chunk = list.by_ref().take(n).collect::<io::Result<Vec<_>>>()?;
    chunk.sort();
    chunk.dedup(); // a folder changing under readdir may, in principle, repeat an entry
    Ok(chunk)
}

/// The entry as a drawing, or `None` (with a log line unless it is a hidden save in progress).
fn as_drawing(entry: &DirEntry) -> io::Result<Option<Drawing>> {
    let Some(name) = utf8_name(entry, "file") else {
        return Ok(None);
    };
    if name.starts_with('.') {
        return Ok(None);
    }
    let file_type = entry.file_type()?;
    let is_png = Path::new(&name)
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("png"));
    if !file_type.is_file() {
        skip(&entry.path(), describe(file_type), "is not a drawing");
        Ok(None)
    } else if !is_png {
        skip(&entry.path(), "file", "is not named *.png");
        Ok(None)
    } else {
        Ok(Some(Drawing {
            name,
            path: entry.path(),
        }))
    }
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<io::Result<DirEntry>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn utf8_name(entry: &DirEntry, what: &str) -> Option<String> {
    match entry.file_name().into_string() {
        Ok(name) => Some(name),
        Err(raw) => {
            skip(&entry.path(), what, &format!("name {raw:?} is not UTF-8"));
            None
        }
    }
}

fn describe(file_type: FileType) -> &'static str {
    if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_dir() {
        "folder"
    } else if file_type.is_file() {
        "file"
    } else {
        "special file"
    }
}

fn skip(path: &Path, what: &str, why: &str) {
    tracing::warn!(path = %path.display(), "skipping {what}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn only_real_category_folders_and_png_files_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("cat")).unwrap();
        std::fs::create_dir_all(root.join("hot dog")).unwrap();
        std::fs::create_dir_all(root.join("bad$name")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.png"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
        std::fs::write(root.join("dog"), b"a file where a folder should be").unwrap();
        let raw = std::ffi::OsStr::from_bytes(b"caf\xe9");
        std::fs::create_dir_all(root.join(raw)).unwrap();

        let cats = categories(root).unwrap();
        let names: Vec<&str> = cats.iter().map(|c| c.category.as_str()).collect();
        assert_eq!(names, ["cat", "hot dog"]);

        let cat = &cats[0].path;
        std::fs::write(cat.join("b.png"), b"b").unwrap();
        std::fs::write(cat.join("a.PNG"), b"a").unwrap();
        std::fs::write(cat.join(".0190.tmp"), b"in progress").unwrap();
        std::fs::write(cat.join("notes.txt"), b"t").unwrap();
        std::fs::create_dir(cat.join("sub.png")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.png"), cat.join("link.png")).unwrap();
        std::fs::write(cat.join(std::ffi::OsStr::from_bytes(b"\xff.png")), b"z").unwrap();
        let mut list = drawings(&cats[0]).unwrap();
        let found: Vec<String> = next_chunk(&mut list, 100)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(found, ["a.PNG", "b.png"]);
    }

    #[test]
    fn a_missing_image_folder_has_no_categories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(categories(&dir.path().join("nope")).unwrap().is_empty());
    }
}
