//! `sluice inject --serve` as the install manifest runs it: the command of
//! the webhook container in `deploy/kubernetes/30-deployment.yaml`, with
//! only the listening address (127.0.0.1, port chosen by the system) and
//! the certificate paths (a pair made here) replaced. curl, trusting only the
//! test CA and resolving the Service's DNS name to 127.0.0.1, plays the
//! kubelet's probe and the API server; SIGTERM (as the kubelet sends it)
//! stops it with exit 0. Without curl the test is skipped (a failure under
//! `CI=true`).

use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SERVICE_DNS: &str = "sluice-webhook.sluice.svc";

/// The webhook container's command in the install manifest.
fn manifest_command() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/30-deployment.yaml");
    let text = std::fs::read_to_string(&path).expect("read the manifest");
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).expect("yaml");
        if value["kind"] == "Deployment" {
            let command = &value["spec"]["template"]["spec"]["containers"][0]["command"];
            return serde_json::from_value(command.clone()).expect("a command");
        }
    }
    panic!("no Deployment in {}", path.display());
}

/// Replaces the value after `flag`.
fn set(command: &mut [String], flag: &str, value: &str) {
    let at = command
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("`{flag}` in {command:?}"));
    command[at + 1] = value.to_owned();
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(ca: &Path, port: u16, args: &[&str], path: &str) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{SERVICE_DNS}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("https://{SERVICE_DNS}:{port}{path}"))
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl {path}: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, code) = stdout.rsplit_once('\n').expect("a status line");
    (code.to_owned(), body.to_owned())
}

#[test]
fn the_manifest_command_serves_probes_and_reviews_and_stops_on_sigterm() {
    if Command::new("curl").arg("--version").output().is_err() {
        sluice_testkit::skip(
            "sluice inject --serve over TLS",
            "`curl` is not installed (Debian package curl)",
        );
        return;
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("sluice-webhook-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A CA and a serving certificate for the Service's name.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "webhook test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![SERVICE_DNS.to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let (ca_path, cert_path, key_path) =
        (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&ca_path, ca.pem()).expect("write");
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");

    let mut command = manifest_command();
    assert_eq!(command[0], "sluice");
    set(&mut command, "--listen", "127.0.0.1:0");
    set(&mut command, "--cert", cert_path.to_str().expect("utf-8"));
    set(&mut command, "--key", key_path.to_str().expect("utf-8"));
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let mut child = Killed(child);
    // Standard error, line by line, from a thread.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let port: u16 = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no address announced; stderr: {seen:?}"));
        if let Some(rest) = line.strip_prefix("admission webhook on https://127.0.0.1:") {
            break rest
                .split(':')
                .next()
                .expect("port")
                .parse()
                .expect("a port");
        }
        seen.push(line);
    };

    // The readiness and liveness probe.
    let (code, body) = curl(&ca_path, port, &[], "/healthz");
    assert_eq!((code.as_str(), body.as_str()), ("200", "ok\n"));

    // A review of a pod in an opted-in namespace, at the path the
    // MutatingWebhookConfiguration uses.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b3a8d6f0-0c43-4f6e-9f0e-7d1d2a1c9e01",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "web-", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]}
            },
            "dryRun": false
        }
    });
    let review_path = dir.join("review.json");
    std::fs::write(&review_path, serde_json::to_vec(&review).expect("json")).expect("write");
    let data = format!("@{}", review_path.display());
    let args = [
        "-H",
        "content-type: application/json",
        "--data-binary",
        data.as_str(),
    ];
    let (code, body) = curl(&ca_path, port, &args, "/mutate/namespace-enabled");
    assert_eq!(code, "200", "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        answer["response"]["uid"],
        "b3a8d6f0-0c43-4f6e-9f0e-7d1d2a1c9e01"
    );
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    // Not opted in: allowed, no patch.
    let (code, body) = curl(&ca_path, port, &args, "/mutate");
    assert_eq!(code, "200", "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none(), "{body}");

    // SIGTERM, as the kubelet stops the container: exit 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // The reader thread ends at the end of standard error.
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|l| l == "admission webhook stopped"),
        "{rest:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_certificate_is_an_error_naming_the_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "inject",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "/nonexistent/tls.crt",
            "--key",
            "/nonexistent/tls.key",
        ])
        .output()
        .expect("sluice runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`/nonexistent/tls.crt`"), "{stderr}");
}
