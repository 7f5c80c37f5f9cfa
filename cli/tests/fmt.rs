//! `sluice fmt`: the formatter over every policy the repository and the
//! shared corpus hold, and the command end to end.

mod support;

use sluice_compiler::Config;
use sluice_lang::ast::SourceFile;
use sluice_lang::format::{comments, format_source, tokens};
use sluice_lang::{parse, source};
use std::path::{Path, PathBuf};
use support::run_sluice as sluice;

/// One policy: its files, and where it came from.
struct Unit {
    what: String,
    files: Vec<SourceFile>,
}

/// Files under `dir` (recursively) whose extension is `ext`, sorted.
fn walk(dir: &Path, ext: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, ext, found);
        } else if path.extension().is_some_and(|x| x == ext) {
            found.push(path);
        }
    }
    found.sort();
}

/// The policies of the `.toml` and `.sluice` files under `dir`: a TOML's
/// `policy` string or the file or folder its `policy-file` names, and each
/// `.sluice` file on its own.
fn units_under(dir: &Path, units: &mut Vec<Unit>) {
    let mut tomls = Vec::new();
    walk(dir, "toml", &mut tomls);
    for path in tomls {
        let text = std::fs::read_to_string(&path).expect("read toml");
        let Ok(table) = toml::from_str::<toml::Table>(&text) else {
            continue;
        };
        let what = path.display().to_string();
        if let Some(policy) = table.get("policy").and_then(|v| v.as_str()) {
            units.push(Unit {
                what,
                files: vec![SourceFile {
                    path: "inline.sluice".into(),
                    text: policy.to_string(),
                }],
            });
        } else if let Some(file) = table.get("policy-file").and_then(|v| v.as_str()) {
            let target = path.parent().expect("toml folder").join(file);
            let files = source::load(&target).expect("load policy-file");
            units.push(Unit { what, files });
        }
    }
    let mut sluices = Vec::new();
    walk(dir, "sluice", &mut sluices);
    for path in sluices {
        units.push(Unit {
            what: path.display().to_string(),
            files: source::load(&path).expect("load .sluice"),
        });
    }
}

/// Every file of the checked-in fuzz corpus of `target` that is UTF-8.
fn fuzz_units(target: &str, units: &mut Vec<Unit>) {
    let dir = sluice_testkit::repository()
        .join("fuzz/corpus")
        .join(target);
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus").flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            units.push(Unit {
                what: entry.path().display().to_string(),
                files: vec![SourceFile {
                    path: "fuzz.sluice".into(),
                    text,
                }],
            });
        }
    }
}

/// The bundle bytes of `files`, or the codes of the diagnostics (sorted)
/// when they do not compile.
fn compile(files: Vec<SourceFile>) -> Result<Vec<u8>, Vec<String>> {
    let (policy, syntax) = parse::parse_files(files);
    if !syntax.is_empty() {
        return Err(syntax.iter().map(|d| d.code.as_str().to_string()).collect());
    }
    match sluice_compiler::compile(&policy, &Config::new()) {
        Ok(compiled) => Ok(compiled.bundle),
        Err(diags) => {
            let mut codes: Vec<String> =
                diags.iter().map(|d| d.code.as_str().to_string()).collect();
            codes.sort();
            Err(codes)
        }
    }
}

/// For every policy in `policies/`, `conformance/`, the shared corpus and
/// the fuzz corpora: each file that parses formats to a fixed point with
/// the same tokens and comments (in order), and the formatted policy
/// compiles to the same bundle bytes (or fails with the same codes).
#[test]
fn formatting_keeps_every_policy() {
    let repo = sluice_testkit::repository();
    let mut units = Vec::new();
    units_under(&repo.join("policies"), &mut units);
    units_under(&repo.join("conformance"), &mut units);
    if let Some(shared) = sluice_testkit::shared_dir("", "the shared policies") {
        units_under(&shared, &mut units);
    }
    fuzz_units("parse", &mut units);
    fuzz_units("format", &mut units);

    let (mut formatted_files, mut same_bytes) = (0, 0);
    for unit in units {
        let mut formatted = Vec::new();
        for file in &unit.files {
            let Ok(once) = format_source(&file.text) else {
                continue;
            };
            let what = format!("{} ({})", unit.what, file.path);
            assert_eq!(
                format_source(&once).as_ref(),
                Ok(&once),
                "idempotent: {what}"
            );
            assert_eq!(tokens(&once), tokens(&file.text), "tokens: {what}");
            assert_eq!(comments(&once), comments(&file.text), "comments: {what}");
            formatted_files += 1;
            formatted.push(SourceFile {
                path: file.path.clone(),
                text: once,
            });
        }
        if formatted.len() != unit.files.len() {
            continue;
        }
        let before = compile(unit.files);
        let after = compile(formatted);
        assert_eq!(before, after, "compiles alike: {}", unit.what);
        same_bytes += usize::from(before.is_ok());
    }
    assert!(
        formatted_files >= 100,
        "only {formatted_files} files formatted"
    );
    assert!(same_bytes >= 50, "only {same_bytes} bundles compared");
}

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fmt-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MESSY: &str = "server web {port 8080 ; route api {path prefix \"/api\"}   # api\n\n\n}\n";
const TIDY: &str =
    "server web {\n  port 8080\n  route api {\n    path prefix \"/api\"\n  } # api\n}\n";

#[test]
fn check_lists_and_fmt_rewrites_a_folder() {
    let dir = tmp("folder");
    std::fs::create_dir_all(dir.join("teams")).unwrap();
    std::fs::write(dir.join("teams/web.sluice"), MESSY).unwrap();
    std::fs::write(dir.join("tidy.sluice"), TIDY).unwrap();
    std::fs::write(dir.join("notes.txt"), MESSY).unwrap();
    let d = dir.to_str().unwrap();

    let run = sluice(&["fmt", "--check", d], "");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.out,
        format!("{}\n", dir.join("teams/web.sluice").display())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("teams/web.sluice")).unwrap(),
        MESSY
    );

    let run = sluice(&["fmt", d], "");
    assert_eq!((run.code, run.out.as_str()), (0, ""));
    assert_eq!(
        std::fs::read_to_string(dir.join("teams/web.sluice")).unwrap(),
        TIDY
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        MESSY
    );

    let run = sluice(&["fmt", "--check", d], "");
    assert_eq!((run.code, run.out.as_str()), (0, ""));
}

#[test]
fn a_file_with_a_syntax_error_is_left_alone() {
    let dir = tmp("syntax");
    let bad = dir.join("bad.sluice");
    std::fs::write(&bad, "server web {\n  port\n").unwrap();
    let good = dir.join("good.sluice");
    std::fs::write(&good, MESSY).unwrap();

    let run = sluice(&["fmt", "--check", dir.to_str().unwrap()], "");
    assert_eq!(run.code, 2);
    assert_eq!(run.out, format!("{}\n", good.display()));
    assert!(run.err.contains("syntax") && run.err.contains("bad.sluice"));

    let run = sluice(&["fmt", bad.to_str().unwrap(), good.to_str().unwrap()], "");
    assert_eq!(run.code, 2);
    assert!(run.err.contains("error[syntax]") || run.err.contains("syntax"));
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "server web {\n  port\n"
    );
    assert_eq!(std::fs::read_to_string(&good).unwrap(), TIDY);
}

#[test]
fn missing_paths_and_usage() {
    let dir = tmp("missing");
    let run = sluice(&["fmt", dir.join("nope.sluice").to_str().unwrap()], "");
    assert_eq!(run.code, 2);
    assert!(run.err.starts_with("error: "), "{}", run.err);
    let run = sluice(&["fmt", dir.to_str().unwrap()], "");
    assert_eq!(run.code, 2);
    assert!(run.err.contains("no `.sluice` files"), "{}", run.err);
    let run = sluice(&["fmt", "--help"], "");
    assert_eq!(run.code, 0);
    assert!(run.out.contains("--check") && run.out.contains("sluice fmt --check policy/"));
}
