//! Test support shared by the workspace's test suites: what a test does
//! when something it needs is missing here.
//!
//! On a developer's machine a test that cannot run (no `../shared` folder
//! next to the repository, not root, no network namespaces) says why and
//! passes. Under CI (`CI=true`, which `.ci/run` exports) the same test
//! fails instead, so that a skip cannot hide a test that never ran.
//!
//! It also holds [`Rng`], the one deterministic generator the test suites
//! draw random inputs from, and [`fixtures`], policy texts that several
//! suites share.

pub mod fixtures;
pub mod nginx;
pub mod registry;
mod rng;

pub use rng::Rng;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Whether this run is CI: the `CI` variable is set to anything but empty,
/// `0` or `false`.
pub fn is_ci() -> bool {
    ci_value(std::env::var_os("CI").as_deref())
}

/// Whether a value of the `CI` variable means CI.
fn ci_value(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Called when a test cannot run here: outside CI prints
/// `skipping WHAT: REASON` and returns (the caller then returns); under CI
/// panics with that message.
#[track_caller]
pub fn skip(what: &str, reason: &str) {
    if let Err(message) = decide(is_ci(), what, reason) {
        panic!("{message}");
    }
    eprintln!("skipping {what}: {reason}");
}

/// `Err` with the failure message under CI, `Ok` where a skip is fine.
fn decide(ci: bool, what: &str, reason: &str) -> Result<(), String> {
    if ci {
        Err(format!(
            "CI is set, so {what} must run, but it cannot: {reason}"
        ))
    } else {
        Ok(())
    }
}

/// The folder `../shared/REL` next to the repository (the specification's
/// shared corpus), when it exists; otherwise [`skip`]s `what` (a failure
/// under CI) and gives `None`.
#[track_caller]
pub fn shared_dir(rel: &str, what: &str) -> Option<PathBuf> {
    let repository = repository();
    let dir = repository
        .parent()
        .unwrap_or(&repository)
        .join("shared")
        .join(rel);
    if dir.is_dir() {
        return Some(dir);
    }
    skip(what, &format!("`{}` is not a folder", dir.display()));
    None
}

/// The `.toml` files directly in `dir` (conformance cases), sorted by
/// path; panics when `dir` does not read or holds none.
#[track_caller]
pub fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no conformance files in {}",
        dir.display()
    );
    paths
}

/// Runs `run` on every file of the checked-in fuzz corpus
/// `fuzz/corpus/TARGET`, as the fuzz target would; the number of files.
/// Panics when the folder does not read.
#[track_caller]
pub fn replay_corpus(target: &str, mut run: impl FnMut(&[u8])) -> usize {
    let dir = repository().join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            run(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    n
}

/// The repository's root folder.
pub fn repository() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().unwrap_or(testkit).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        assert!(ci_value(Some(OsStr::new("true"))));
        assert!(ci_value(Some(OsStr::new("1"))));
        assert!(!ci_value(None));
        assert!(!ci_value(Some(OsStr::new(""))));
        assert!(!ci_value(Some(OsStr::new("0"))));
        assert!(!ci_value(Some(OsStr::new("FALSE"))));
    }

    #[test]
    fn a_skip_fails_under_ci_only() {
        let message = decide(true, "the shared corpus", "`x` is not a folder").unwrap_err();
        assert_eq!(
            message,
            "CI is set, so the shared corpus must run, but it cannot: `x` is not a folder"
        );
        assert_eq!(decide(false, "the shared corpus", "no"), Ok(()));
    }

    #[test]
    fn the_repository_holds_the_workspace() {
        assert!(repository().join("Cargo.toml").is_file());
        assert!(repository().join("conformance").is_dir());
    }
}
