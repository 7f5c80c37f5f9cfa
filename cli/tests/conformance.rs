//! Runs the conformance corpora through the library's runner and asserts
//! that nothing fails: the project's `conformance/` and `policies/`, and the
//! shared corpus next to the repository (skipped when absent, except under
//! CI, where that is a failure).

use sluice_cli::conformance::{self, Outcome};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(dir: &Path) -> Outcome {
    let outcome = conformance::run_paths(&[dir.to_path_buf()], &mut |m| eprintln!("{m}"));
    eprintln!("{}: {} files, {outcome}", dir.display(), outcome.files);
    outcome
}

fn assert_clean(outcome: &Outcome, what: &str) {
    assert_eq!(
        outcome.failed,
        0,
        "{what}: {outcome}\n{}",
        outcome.messages.join("\n")
    );
}

/// Runs the corpus in `dir`, which must hold files, and asserts that nothing
/// fails.
fn assert_clean_corpus(dir: &Path, what: &str) {
    let outcome = run(dir);
    assert_clean(&outcome, what);
    assert!(
        outcome.files > 0,
        "no conformance files in {}",
        dir.display()
    );
}

#[test]
fn project_conformance_corpus() {
    assert_clean_corpus(&root().join("conformance"), "conformance/");
}

#[test]
fn example_policies() {
    let dir = root().join("policies");
    let outcome = run(&dir);
    assert_clean(&outcome, "policies/");
}

#[test]
fn shared_conformance_corpus() {
    let Some(dir) = sluice_testkit::shared_dir("conformance", "the shared conformance corpus")
    else {
        return;
    };
    assert_clean_corpus(&dir, "shared/conformance/");
}
