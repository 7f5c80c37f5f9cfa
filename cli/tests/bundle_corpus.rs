//! The bundle fuzz corpus (`fuzz/corpus/bundle/`) against fresh compiles of
//! the example policies (`policies/`); the version rule is in
//! `docs/bundle.md`, "Format versions".
//!
//! - The corpus file named after each policy folder holds exactly the bytes
//!   a fresh compile of that policy writes, and `truncated` is the first 100
//!   bytes of `seed`. After a change to the compiler or the layout,
//!   regenerate them with
//!   `SLUICE_BLESS=1 cargo test -p sluice --test bundle_corpus`; blessing
//!   refuses to replace a committed bundle that still loads but decides
//!   some conformance case differently (a layout change without a version
//!   bump).
//! - Every corpus file either fails to load (a file whose header names
//!   another format version with the version error) or is the bundle of a
//!   policy and decides each of that policy's conformance cases exactly
//!   like a fresh compile.
//! - A bundle of an older layout that still says format version 1
//!   (`tests/data/egress-lockdown-v1`, the corpus file of
//!   `egress-lockdown` before version 2) is refused with an error naming
//!   both versions.

use sluice_cli::decide::Decider;
use sluice_cli::json::{self, DecisionJsonExt as _};
use sluice_cli::policy;
use sluice_compiler::Config;
use sluice_runtime::bundle::FORMAT_VERSION;
use sluice_runtime::{AlignedBytes, Bundle, LoadError, NoTrace};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir() -> PathBuf {
    root().join("fuzz/corpus/bundle")
}

/// An example policy: its fresh bundle and its conformance requests.
struct Example {
    bundle: Vec<u8>,
    /// `(case name, request as JSON)`.
    cases: Vec<(String, serde_json::Value)>,
}

/// Every folder of `policies/` by name, compiled, with its cases.
fn examples() -> BTreeMap<String, Example> {
    let mut out = BTreeMap::new();
    let dir = root().join("policies");
    for entry in std::fs::read_dir(&dir).expect("policies/") {
        let folder = entry.expect("entry").path();
        if !folder.is_dir() {
            continue;
        }
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 folder name")
            .to_string();
        let mut tomls: Vec<PathBuf> = std::fs::read_dir(&folder)
            .expect("policy folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        tomls.sort();
        assert_eq!(tomls.len(), 1, "{name}: one conformance file expected");
        let text = std::fs::read_to_string(&tomls[0]).expect("conformance file");
        let table: toml::Table = toml::from_str(&text).expect("valid TOML");
        let file = table
            .get("policy-file")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{name}: no `policy-file`"));
        let parsed = policy::load(&folder.join(file)).expect("the policy loads");
        let compiled = policy::compile(&parsed, &Config::default())
            .unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"));
        let cases = table
            .get("case")
            .and_then(|c| c.as_array())
            .unwrap_or_else(|| panic!("{name}: no cases"))
            .iter()
            .map(|case| {
                let name = case["name"].as_str().expect("case name").to_string();
                let request = serde_json::to_value(&case["request"]).expect("request as JSON");
                (name, request)
            })
            .collect();
        out.insert(
            name,
            Example {
                bundle: compiled.bundle,
                cases,
            },
        );
    }
    assert!(out.len() >= 5, "only {} example policies", out.len());
    out
}

/// The decision (or the request error) of every case, as JSON text.
fn decisions(bundle: &Bundle<'_>, example: &Example) -> Vec<String> {
    let mut decider = Decider::new(bundle);
    example
        .cases
        .iter()
        .map(|(name, request)| {
            let request =
                json::request_from_value(request).unwrap_or_else(|e| panic!("case `{name}`: {e}"));
            match decider.decide(&request, &mut NoTrace) {
                Ok(d) => format!("{name}: {}", d.to_line()),
                Err(e) => format!("{name}: error {e}"),
            }
        })
        .collect()
}

/// Where `committed` decides differently from the fresh compile: `None`
/// when it does not load at all, else the differing cases.
fn differences(committed: &[u8], example: &Example) -> Result<Vec<String>, LoadError> {
    let aligned = AlignedBytes::new(committed);
    let old = Bundle::from_bytes(aligned.as_bytes())?;
    let fresh_bytes = AlignedBytes::new(&example.bundle);
    let fresh = Bundle::from_bytes(fresh_bytes.as_bytes()).expect("a fresh bundle loads");
    let (old, fresh) = (decisions(&old, example), decisions(&fresh, example));
    assert_eq!(old.len(), fresh.len());
    Ok(old
        .into_iter()
        .zip(fresh)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("committed {a}\n      fresh {b}"))
        .collect())
}

/// The format version in a whole header (48 bytes starting with the magic).
fn header_version(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 48 {
        return None;
    }
    let v = bytes.get(8..12)?;
    (bytes.get(0..8)? == b"SLUICEB\0").then(|| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

/// The files the corpus must hold: each policy's bundle and `truncated`.
fn expected_files(examples: &BTreeMap<String, Example>) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = examples
        .iter()
        .map(|(name, e)| (name.clone(), e.bundle.clone()))
        .collect();
    let seed = &examples.get("seed").expect("policies/seed").bundle;
    files.push(("truncated".into(), seed[..100].to_vec()));
    files
}

#[test]
fn corpus_holds_fresh_bundles_of_the_current_version() {
    let examples = examples();
    let bless = std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (name, fresh) in expected_files(&examples) {
        let path = corpus_dir().join(&name);
        let committed = std::fs::read(&path).unwrap_or_default();
        if committed == fresh {
            continue;
        }
        if !bless {
            problems.push(format!(
                "{}: differs from a fresh compile (regenerate with SLUICE_BLESS=1, see the top of this file)",
                path.display()
            ));
            continue;
        }
        if let Some(example) = examples.get(&name) {
            if let Ok(diff) = differences(&committed, example) {
                assert!(
                    diff.is_empty(),
                    "{}: the committed bundle still loads as format version {FORMAT_VERSION} but decides differently \
                     from a fresh compile: the layout changed without a version bump; bump FORMAT_VERSION \
                     (docs/bundle.md, \"Format versions\") before blessing:\n    {}",
                    path.display(),
                    diff.join("\n    ")
                );
            }
        }
        std::fs::write(&path, &fresh).expect("write the corpus file");
        eprintln!("blessed {}", path.display());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_corpus_bundle_is_refused_or_decides_like_a_fresh_compile() {
    let examples = examples();
    let mut loaded = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("the bundle corpus") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = std::fs::read(&path).expect("corpus file");
        let aligned = AlignedBytes::new(&bytes);
        match (
            Bundle::from_bytes(aligned.as_bytes()),
            header_version(&bytes),
        ) {
            (Err(LoadError::UnsupportedVersion { found, supported }), Some(v)) => {
                assert_eq!((found, supported), (v, FORMAT_VERSION), "{name}");
            }
            (Err(e), Some(v)) if v != FORMAT_VERSION => problems.push(format!(
                "{name}: says format version {v} but fails with `{e}`, not the version error"
            )),
            (Err(_), _) => {}
            (Ok(_), _) => match examples.get(name) {
                None => problems.push(format!(
                    "{name}: loads but is not named after a policy of policies/"
                )),
                Some(example) => {
                    let diff = differences(&bytes, example).expect("it loaded above");
                    if !diff.is_empty() {
                        problems.push(format!(
                            "{name}: decides differently from a fresh compile:\n    {}",
                            diff.join("\n    ")
                        ));
                    }
                    loaded += 1;
                }
            },
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        loaded,
        examples.len(),
        "every policy has a loading corpus bundle"
    );
}

#[test]
fn a_bundle_of_an_older_layout_is_refused_naming_both_versions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/egress-lockdown-v1");
    let bytes = std::fs::read(&path).expect("the stale bundle");
    assert_eq!(header_version(&bytes), Some(1));
    let aligned = AlignedBytes::new(&bytes);
    let err = match Bundle::from_bytes(aligned.as_bytes()) {
        Ok(_) => panic!("a version 1 bundle of an older layout loaded"),
        Err(e) => e,
    };
    assert_eq!(
        err,
        LoadError::UnsupportedVersion {
            found: 1,
            supported: FORMAT_VERSION
        }
    );
    assert_eq!(
        err.to_string(),
        format!("bundle format version `1` is not supported: this runtime reads version `{FORMAT_VERSION}`")
    );
    // `sluice inspect` reports the same error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("inspect")
        .arg(&path)
        .output()
        .expect("run sluice inspect");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bundle format version `1` is not supported"),
        "{stderr}"
    );
}
