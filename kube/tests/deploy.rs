//! The install manifests in `deploy/kubernetes/`: every object validated by
//! `kubernetes-validate --strict` against the Kubernetes 1.31 schemas (PyPI;
//! `.ci/run` installs it; without it the test is skipped, and fails under
//! `CI=true`), and the objects checked against each other with the API
//! types: names, ports, paths, the certificate's Secret and DNS names,
//! least privilege, and the example application injected as the webhook
//! would inject it.
//!
//! cert-manager's `Issuer` and `Certificate` are custom resources, not in
//! the Kubernetes schemas: `kubernetes-validate` has no schema for them, so
//! they are validated against cert-manager's own CRDs (`tests/crds/`, with
//! the `jsonschema` package that `kubernetes-validate` installs), strictly.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;
use sluice_kube::inject::{self, InjectConfig, Injection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The schema version checked against (native sidecars need 1.29).
const KUBERNETES: &str = "1.31.0";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The `.yaml` files under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every document of every file under `dir`, with its file.
fn objects(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut all = Vec::new();
    for path in yaml_files(dir) {
        let text = std::fs::read_to_string(&path).expect("read");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                all.push((path.clone(), value));
            }
        }
    }
    all
}

/// The one object of `kind` named `name`, as the API type `T`.
fn one<T: serde::de::DeserializeOwned>(all: &[(PathBuf, Value)], kind: &str, name: &str) -> T {
    let found: Vec<&Value> = all
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} `{name}`");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind} `{name}`: {e}"))
}

#[test]
fn deploy_manifests_pass_kubernetes_validate_strict() {
    let files: Vec<PathBuf> = yaml_files(&deploy_dir())
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "cert-manager"))
        .collect();
    assert!(files.len() >= 8, "{files:?}");
    let output = match Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES])
        .args(&files)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            sluice_testkit::skip(
                "validating deploy/ with kubernetes-validate",
                &format!(
                    "`kubernetes-validate` cannot be run ({e}); `pip install kubernetes-validate`"
                ),
            );
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    // Exit 0 also when a schema is missing (a warning): every object must
    // have been checked.
    assert!(!text.contains("WARN"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    let objects: usize = files
        .iter()
        .map(|f| {
            objects(f.parent().expect("dir"))
                .iter()
                .filter(|(p, _)| p == f)
                .count()
        })
        .sum();
    assert_eq!(
        text.matches(" passed for resource ").count(),
        objects,
        "{text}"
    );
}

#[test]
fn cert_manager_objects_pass_their_crd_schemas_strictly() {
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crds");
    let resources = yaml_files(&deploy_dir().join("cert-manager"));
    assert_eq!(resources.len(), 2, "{resources:?}");
    let output = Command::new("python3")
        .arg(crds.join("validate_custom_resources.py"))
        .arg(crds.join("cert-manager.io_certificates.yaml"))
        .arg(crds.join("cert-manager.io_issuers.yaml"))
        .arg("--")
        .args(&resources)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            sluice_testkit::skip(
                "validating deploy/kubernetes/cert-manager against cert-manager's CRDs",
                &format!("`python3` cannot be run ({e})"),
            );
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if text.contains("No module named") {
        sluice_testkit::skip(
            "validating deploy/kubernetes/cert-manager against cert-manager's CRDs",
            &format!("a Python module is missing (`pip install kubernetes-validate` brings jsonschema and PyYAML): {text}"),
        );
        return;
    }
    assert!(output.status.success(), "{text}");
    assert_eq!(text.matches(" passed for ").count(), 2, "{text}");
    assert!(
        text.contains("passed for Certificate sluice-webhook"),
        "{text}"
    );
    assert!(
        text.contains("passed for Issuer sluice-selfsigned"),
        "{text}"
    );
}

/// Whether a label selector selects an object with `labels`
/// (`matchLabels` and the operators `In`, `NotIn`, `Exists`, `DoesNotExist`).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("operator `{other}`"),
        }
    });
    by_labels && by_expressions
}

/// A namespace's labels as the API server sees them: its own plus
/// `kubernetes.io/metadata.name`.
fn namespace_labels(name: &str, own: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = own
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
    labels
}

/// The API server's rule for a webhook service path: it starts with `/`
/// and each segment is a DNS-1123 subdomain (so no query string).
fn valid_webhook_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/').all(|segment| {
        !segment.is_empty()
            && segment.len() <= 253
            && segment.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    })
}

#[test]
fn webhook_paths_are_ones_the_api_server_accepts() {
    assert!(valid_webhook_path("/mutate"));
    assert!(valid_webhook_path("/mutate/namespace-enabled"));
    assert!(!valid_webhook_path("/mutate?namespace=enabled"));
    assert!(!valid_webhook_path("mutate"));
    assert!(!valid_webhook_path("/Mutate"));
}

fn flag<'a>(command: &'a [String], name: &str) -> &'a str {
    let at = command
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("`{name}` in {command:?}"));
    command
        .get(at + 1)
        .unwrap_or_else(|| panic!("a value after `{name}`"))
}

#[test]
fn the_install_manifests_fit_together() {
    let all = objects(&deploy_dir());
    let namespace: Namespace = one(&all, "Namespace", "sluice");
    let ns = namespace.metadata.name.as_deref().expect("name");

    // Least privilege: no RBAC object at all, no API token.
    for (path, v) in &all {
        let kind = v["kind"].as_str().unwrap_or("");
        assert!(
            !["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"].contains(&kind),
            "{}: {kind}",
            path.display()
        );
    }
    let account: ServiceAccount = one(&all, "ServiceAccount", "sluice-webhook");
    assert_eq!(account.metadata.namespace.as_deref(), Some(ns));
    assert_eq!(account.automount_service_account_token, Some(false));

    // The Deployment runs `sluice inject --serve` as the proxy's non-root uid.
    let deployment: Deployment = one(&all, "Deployment", "sluice-webhook");
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(ns));
    let template = deployment.spec.as_ref().expect("spec").template.clone();
    let pod: PodSpec = template.spec.clone().expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("sluice-webhook"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let pod_security = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(inject::PROXY_UID));
    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    let command = container.command.clone().expect("command");
    assert_eq!(&command[..3], ["sluice", "inject", "--serve"]);
    let listen: std::net::SocketAddr = flag(&command, "--listen").parse().expect("--listen");
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .expect("a port named https");
    assert_eq!(i32::from(listen.port()), port.container_port);
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let resources = container.resources.clone().expect("resources");
    assert!(resources.requests.is_some() && resources.limits.is_some());
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe
            .clone()
            .and_then(|p| p.http_get)
            .expect("an httpGet probe");
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("https".to_owned()));
    }
    // The certificate files are in the mounted Secret.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| flag(&command, "--cert").starts_with(&format!("{}/", m.mount_path)))
        .expect("--cert is under a volume mount");
    assert!(flag(&command, "--key").starts_with(&format!("{}/", mount.mount_path)));
    assert_eq!(mount.read_only, Some(true));
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.clone())
        .and_then(|s| s.secret_name)
        .expect("the mount is a Secret volume");

    // The Service sends 443 to that port of those pods.
    let service: Service = one(&all, "Service", "sluice-webhook");
    assert_eq!(service.metadata.namespace.as_deref(), Some(ns));
    let service_spec = service.spec.clone().expect("spec");
    let pod_labels = template.metadata.and_then(|m| m.labels).expect("labels");
    for (k, v) in service_spec.selector.iter().flatten() {
        assert_eq!(pod_labels.get(k), Some(v), "selector {k}");
    }
    let service_port = &service_spec.ports.expect("ports")[0];
    assert_eq!(service_port.port, 443);
    assert_eq!(
        service_port.target_port,
        Some(IntOrString::String("https".to_owned()))
    );

    // The two webhooks: paths, selectors, failure policies.
    let configuration: MutatingWebhookConfiguration =
        one(&all, "MutatingWebhookConfiguration", "sluice-webhook");
    let webhooks: Vec<MutatingWebhook> = configuration.webhooks.clone().expect("webhooks");
    assert_eq!(webhooks.len(), 2);
    let mut paths = Vec::new();
    for webhook in &webhooks {
        let reference = webhook.client_config.service.clone().expect("a service");
        assert_eq!(reference.name, "sluice-webhook");
        assert_eq!(reference.namespace, ns);
        assert_eq!(reference.port, Some(443));
        let path = reference.path.expect("a path");
        assert!(valid_webhook_path(&path), "`{path}`");
        paths.push(path);
        assert_eq!(webhook.admission_review_versions, ["v1"]);
        assert_eq!(webhook.side_effects, "None");
        assert!(webhook.object_selector.is_none());
        let rules = webhook.rules.clone().expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].operations, Some(vec!["CREATE".to_owned()]));
        assert_eq!(rules[0].resources, Some(vec!["pods".to_owned()]));
        assert_eq!(rules[0].api_groups, Some(vec![String::new()]));
    }
    assert_eq!(paths, ["/mutate/namespace-enabled", "/mutate"]);
    assert_eq!(webhooks[0].failure_policy.as_deref(), Some("Fail"));
    assert_eq!(webhooks[1].failure_policy.as_deref(), Some("Ignore"));
    // Which webhook each namespace's pods go to: exactly one for an
    // ordinary or opted-in namespace, none for the webhook's own and
    // kube-system.
    let enabled = [("sluice.io/inject", "enabled")];
    let called = |labels: &BTreeMap<String, String>| -> Vec<&str> {
        webhooks
            .iter()
            .filter(|w| selects(w.namespace_selector.as_ref().expect("selector"), labels))
            .map(|w| w.name.as_str())
            .collect()
    };
    assert_eq!(
        called(&namespace_labels("shop", &enabled)),
        ["namespace.inject.sluice.io"]
    );
    assert_eq!(
        called(&namespace_labels("shop", &[])),
        ["pod.inject.sluice.io"]
    );
    assert_eq!(
        called(&namespace_labels(
            "shop",
            &[("sluice.io/inject", "disabled")]
        )),
        ["pod.inject.sluice.io"]
    );
    assert!(called(&namespace_labels(ns, &[])).is_empty());
    assert!(called(&namespace_labels("kube-system", &enabled)).is_empty());
    assert!(called(&namespace_labels("kube-system", &[])).is_empty());

    // cert-manager: the Certificate writes that Secret for the Service's
    // name, is issued by the Issuer, and is the CA injected into the
    // webhook configuration.
    let certificate = all
        .iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == "Certificate")
        .expect("a Certificate");
    let issuer = all
        .iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == "Issuer")
        .expect("an Issuer");
    for object in [certificate, issuer] {
        assert_eq!(object["apiVersion"], "cert-manager.io/v1");
        assert_eq!(object["metadata"]["namespace"], ns);
    }
    assert_eq!(certificate["spec"]["secretName"], secret.as_str());
    let dns_names: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .expect("dnsNames")
        .iter()
        .map(|n| n.as_str().expect("a name"))
        .collect();
    assert!(
        dns_names.contains(&format!("sluice-webhook.{ns}.svc").as_str()),
        "{dns_names:?}"
    );
    assert_eq!(certificate["spec"]["issuerRef"]["kind"], "Issuer");
    assert_eq!(
        certificate["spec"]["issuerRef"]["name"],
        issuer["metadata"]["name"]
    );
    assert!(issuer["spec"]["selfSigned"].is_object());
    let inject_ca = configuration
        .metadata
        .annotations
        .clone()
        .and_then(|a| a.get("cert-manager.io/inject-ca-from").cloned())
        .expect("cert-manager.io/inject-ca-from");
    assert_eq!(
        inject_ca,
        format!(
            "{ns}/{}",
            certificate["metadata"]["name"].as_str().expect("name")
        )
    );
}

#[test]
fn the_example_is_injected_as_the_webhook_would() {
    let all = objects(&deploy_dir().join("example"));
    let namespace: Namespace = one(&all, "Namespace", "sluice-example");
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("sluice.io/inject").map(String::as_str),
        Some("enabled")
    );
    let deployment: Deployment = one(&all, "Deployment", "web");
    let template = deployment.spec.expect("spec").template;
    let meta = template.metadata.clone().expect("metadata");
    let configmap_name = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("config.sluice.io/policy-configmap"))
        .expect("the policy ConfigMap annotation");
    let configmap: ConfigMap = one(&all, "ConfigMap", configmap_name);
    let policy = configmap
        .data
        .as_ref()
        .and_then(|d| d.get(inject::POLICY_KEY))
        .expect("the policy key");
    assert!(policy.contains("port 8080"), "{policy}");
    let spec = template.spec.expect("pod spec");
    let app_port = spec.containers[0].ports.as_ref().expect("ports")[0].container_port;
    assert_eq!(app_port, 8080);
    let Ok(Injection::Injected { meta, spec }) =
        inject::inject_pod(&meta, &spec, true, &InjectConfig::default())
    else {
        panic!("the example's pod template is injected");
    };
    let policy_volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == inject::POLICY_VOLUME)
        .and_then(|v| v.config_map.clone())
        .expect("the policy volume is a ConfigMap");
    assert_eq!(&policy_volume.name, configmap_name);
    let toml = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(sluice_kube::annotations::PROXY_CONFIG))
        .expect("the proxy configuration");
    assert!(toml.contains("port = 8080"), "{toml}");
}
