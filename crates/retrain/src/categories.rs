//! The candidate's label order.
//!
//! `model.categories_file` first, in its order; then the categories the deployed model knows
//! beyond the file, in the deployed model's order (learned by earlier runs); then every category
//! the users' data holds that neither knows, sorted by name. A known category therefore never
//! moves, and fine-tuning keeps its learned final-layer row (`Classifier::with_categories`
//! copies rows by name).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use doodle_core::category::Category;

/// The label order for a candidate (see the module docs).
pub fn category_list(
    file: &[String],
    champion: &[String],
    found: &BTreeSet<String>,
) -> Vec<String> {
    let mut list: Vec<String> = Vec::with_capacity(file.len() + found.len());
    let known = file.iter().chain(champion);
    for name in known.chain(found) {
        if !list.contains(name) {
            list.push(name.clone());
        }
    }
    list
}

/// The categories with a `<category>.npy` in any of `dirs` (missing folders hold none). A file
/// whose name is not a valid category is logged and skipped.
pub fn found_in(dirs: &[&Path]) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            let Some(name) = npy_category(&path) else {
                continue;
            };
            match Category::parse(&name) {
                Ok(_) => {
                    found.insert(name);
                }
                Err(err) => tracing::warn!(file = %path.display(), "skipped: {err}"),
            }
        }
    }
    Ok(found)
}

/// `cat` for a plain file `.../cat.npy` (hidden temp files are not categories).
fn npy_category(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".npy")?;
    (!stem.starts_with('.') && path.is_file()).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_categories_keep_their_place_and_new_ones_are_appended_sorted() {
        let file = names(&["cat", "apple", "dog"]);
        let champion = names(&["cat", "apple", "dog", "zebra"]);
        let found: BTreeSet<String> = ["house", "apple", "ant", "zebra"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            category_list(&file, &champion, &found),
            names(&["cat", "apple", "dog", "zebra", "ant", "house"])
        );
    }
}
