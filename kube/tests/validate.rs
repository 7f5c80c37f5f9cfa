//! `sluice inject` output on real-world manifests (the Kubernetes
//! documentation's examples in `tests/fixtures/`) is checked by a tool not
//! written here: `kubernetes-validate --strict` against the Kubernetes 1.31
//! OpenAPI schemas (PyPI `kubernetes-validate`; `.ci/run` installs it).
//! Without it the test is skipped, and fails under `CI=true`.

use sluice_kube::annotations::{Identity, Sidecar};
use sluice_kube::inject::{InjectConfig, PolicySource};
use sluice_kube::yaml_documents::{inject_documents, uninject_documents, Outcome};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The schema version checked against (native sidecars need 1.29).
const KUBERNETES: &str = "1.31.0";

const FIXTURES: [&str; 5] = [
    "nginx-deployment.yaml",
    "web.yaml",
    "cronjob.yaml",
    "job.yaml",
    "job-sidecar.yaml",
];

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `kubernetes-validate --strict` on the files; `None` when the tool
/// is not installed (after `skip`).
fn validate(files: &[PathBuf]) -> Option<(bool, String)> {
    let output = match Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES])
        .args(files)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            sluice_testkit::skip(
                "validating inject's output with kubernetes-validate",
                &format!(
                    "`kubernetes-validate` cannot be run ({e}); `pip install kubernetes-validate`"
                ),
            );
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}

fn configs() -> Vec<(&'static str, InjectConfig)> {
    vec![
        ("native, SPIFFE CSI, ConfigMap", InjectConfig::default()),
        (
            "classic, cert-manager, OCI",
            InjectConfig {
                sidecar: Sidecar::Classic,
                identity: Identity::CertManager,
                policy: PolicySource::Remote {
                    reference: "oci://registry.example:5000/team/policy:prod".into(),
                    keys_configmap: "policy-keys".into(),
                },
                skip_outbound_ports: vec![sluice_kube::annotations::PortRange::one(25)],
                ..InjectConfig::default()
            },
        ),
    ]
}

#[test]
fn injected_fixtures_pass_kubernetes_validate_strict() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sluice-kube-validate");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (variant, (label, config)) in configs().into_iter().enumerate() {
        for name in FIXTURES {
            let out = inject_documents(&fixture(name), &config).unwrap();
            assert!(!out.reports.is_empty(), "{name}: no workload found");
            for r in &out.reports {
                assert_eq!(r.outcome, Outcome::Injected, "{name} ({label}): {r}");
            }
            let path = dir.join(format!("{variant}-{name}"));
            std::fs::write(&path, &out.yaml).unwrap();
            files.push(path);
        }
    }
    let Some((ok, text)) = validate(&files) else {
        return;
    };
    assert!(ok, "kubernetes-validate refused inject's output:\n{text}");
    // One line per object, each one passed (5 workloads and a Service, in each of 2 variants).
    let passed = text
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(passed, 12, "{text}");

    // The check has teeth: a field the 1.31 schema does not have is refused.
    let out = inject_documents(&fixture("job.yaml"), &InjectConfig::default()).unwrap();
    let bad = out.yaml.replace(
        "        restartPolicy: Always\n",
        "        restartPolicy: Always\n        notAField: 1\n",
    );
    assert_ne!(bad, out.yaml);
    let path = dir.join("not-a-field.yaml");
    std::fs::write(&path, bad).unwrap();
    let (ok, text) = validate(&[path]).unwrap();
    assert!(
        !ok,
        "kubernetes-validate accepted an unknown field:\n{text}"
    );
    assert!(text.contains("notAField"), "{text}");
}

/// The YAML as the writer writes it, without comments.
fn normalized(text: &str) -> String {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_yaml_ng::to_string(&v).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn uninject_gives_the_fixtures_back() {
    for (label, config) in configs() {
        for name in FIXTURES {
            let text = fixture(name);
            let injected = inject_documents(&text, &config).unwrap();
            let back = uninject_documents(&injected.yaml).unwrap();
            assert!(back
                .reports
                .iter()
                .all(|r| r.outcome == Outcome::Uninjected));
            assert_eq!(back.yaml, normalized(&text), "{name} ({label})");
        }
    }
}
