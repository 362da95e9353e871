//! Where a stage's program is: a path as given, or a name looked up next to the
//! orchestrator's own executable first, then on `PATH`.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The folder of the running executable: where stage programs are looked for first.
pub(crate) fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
}

/// The program to start for `name`, or a message saying where it was looked for.
pub(crate) fn resolve(
    name: &str,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let on_path = path_var.map(std::env::split_paths).into_iter().flatten();
    exe_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(on_path.filter(|dir| !dir.as_os_str().is_empty()))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| not_found(name, exe_dir, path_var))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn not_found(name: &str, exe_dir: Option<&Path>, path_var: Option<&OsStr>) -> String {
    let beside = exe_dir.map_or_else(
        || "its folder is unknown".to_string(),
        |dir| dir.display().to_string(),
    );
    let path = path_var.map_or_else(|| "unset".into(), OsStr::to_string_lossy);
    format!(
        "program `{name}` not found: looked next to the orchestrator ({beside}) and on \
         PATH ({path})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_name_is_found_beside_the_orchestrator_before_path() {
        let (beside, on_path) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mine = executable(beside.path(), "stage1-scan");
        executable(on_path.path(), "stage1-scan");
        let path_var = on_path.path().as_os_str();
        assert_eq!(
            resolve("stage1-scan", Some(beside.path()), Some(path_var)),
            Ok(mine)
        );
        let theirs = on_path.path().join("stage1-scan");
        assert_eq!(resolve("stage1-scan", None, Some(path_var)), Ok(theirs));
    }

    #[test]
    fn a_missing_or_non_executable_name_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stage5-retrain"), "not executable").unwrap();
        let err = resolve(
            "stage5-retrain",
            Some(dir.path()),
            Some(OsStr::new("/nowhere")),
        )
        .unwrap_err();
        assert!(err.contains("`stage5-retrain` not found"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("PATH (/nowhere)"), "{err}");
    }

    #[test]
    fn a_path_is_taken_as_given() {
        assert_eq!(resolve("./x/y", None, None), Ok(PathBuf::from("./x/y")));
    }
}
