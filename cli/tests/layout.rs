//! `sluice push` and `sluice sign` into an OCI image layout (`oci:DIR:TAG`),
//! `sluice pull` of that layout served by a real nginx on loopback, and
//! skopeo copying artifacts and signatures between a real registry and a
//! layout, both ways (sluice-testkit's `TestNginx` and `TestRegistry`,
//! Debian's `/usr/bin/skopeo`).

mod support;

use sluice_fleet::keys::PrivateKey;
use sluice_fleet::layout::LayoutDir;
use sluice_fleet::signature;
use sluice_testkit::nginx::TestNginx;
use sluice_testkit::registry::TestRegistry;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{run_sluice, Run};

const POLICY: &str = r#"
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
}
allow scrape { to web.metrics  from network 10.0.0.0/8 }
"#;

const OTHER_POLICY: &str = r#"
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
}
allow scrape { to web.metrics  from network 192.168.0.0/16 }
"#;

/// Where Debian's package installs skopeo.
const SKOPEO: &str = "/usr/bin/skopeo";

#[track_caller]
fn ok(args: &[&str]) -> Run {
    let run = run_sluice(args, "");
    assert_eq!(run.code, 0, "{}", run.err);
    run
}

#[track_caller]
fn refused(args: &[&str], code: i32, message: &str) {
    let run = run_sluice(args, "");
    assert_eq!(run.code, code, "{}", run.err);
    assert!(run.err.contains(message), "{}", run.err);
    assert!(run.out.is_empty(), "{}", run.out);
}

/// A web root in a fresh temporary folder; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("sluice-cli-layout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        std::fs::write(self.0.join(name), bytes).unwrap();
        self.path(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// The payload `docker-reference`s of the signatures in `layout` for
/// `digest`, in order.
fn signed_references(layout: &Path, digest: &str) -> Vec<String> {
    let layout = LayoutDir::new(layout);
    let sig = layout
        .manifest(&signature::signature_tag(digest).unwrap())
        .unwrap()
        .expect("a signature manifest");
    signature::signature_layers(&sig.bytes)
        .unwrap()
        .iter()
        .map(|l| {
            let payload: serde_json::Value =
                serde_json::from_slice(&layout.blob(&l.digest, 1 << 14).unwrap()).unwrap();
            assert_eq!(
                payload["critical"]["image"]["docker-manifest-digest"],
                digest
            );
            payload["critical"]["identity"]["docker-reference"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn push_and_sign_a_layout_then_pull_it_over_http() {
    let dir = Scratch::new("http");
    let Some(nginx) = TestNginx::start("sluice pull of a layout served by nginx", &dir.0) else {
        return;
    };
    let signer = PrivateKey::generate().unwrap();
    let second = PrivateKey::generate().unwrap();
    let stranger = PrivateKey::generate().unwrap();
    let signer_key = dir.write("signer.key", signer.to_pem());
    let signer_pub = dir.write("signer.pub", signer.public_key().to_pem());
    let second_key = dir.write("second.key", second.to_pem());
    let second_pub = dir.write("second.pub", second.public_key().to_pem());
    let stranger_pub = dir.write("stranger.pub", stranger.public_key().to_pem());
    let policy = dir.write("policy.sluice", POLICY);
    let compiled = dir.path("compiled.bin");
    ok(&["compile", &policy, "-o", &compiled]);

    // Push into a folder that does not exist yet: it becomes a layout.
    let layout = dir.0.join("site/payments");
    let target = format!("oci:{}:v1", layout.display());
    let digest = ok(&["push", &policy, &target]).out.trim().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        read(layout.join("oci-layout")),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let stored = LayoutDir::new(&layout).manifest("v1").unwrap().unwrap();
    assert_eq!(stored.digest, digest);
    // Pushing again changes nothing.
    let index = read(layout.join("index.json"));
    assert_eq!(ok(&["push", &policy, &target]).out.trim(), digest);
    assert_eq!(read(layout.join("index.json")), index);

    // Unsigned: refused with a key, fetched with --allow-unsigned.
    let url = format!("{}/site/payments:v1", nginx.url());
    let pulled = dir.path("pulled.bin");
    refused(
        &[
            "pull",
            &url,
            "--plain-http",
            "--key",
            &signer_pub,
            "-o",
            &pulled,
        ],
        1,
        "unsigned",
    );
    let run = ok(&[
        "pull",
        &url,
        "--plain-http",
        "--allow-unsigned",
        "-o",
        &pulled,
    ]);
    assert!(run.out.contains(&digest), "{}", run.out);
    assert_eq!(read(&pulled), read(&compiled));

    // Sign twice: the second signature is appended to the first.
    let run = ok(&["sign", &target, "--key", &signer_key]);
    let sig_tag = signature::signature_tag(&digest).unwrap();
    assert!(
        run.out
            .contains(&format!("as oci:{}:{sig_tag}", layout.display())),
        "{}",
        run.out
    );
    ok(&["sign", &target, "--key", &second_key]);
    assert_eq!(
        signed_references(&layout, &digest),
        ["payments:v1", "payments:v1"]
    );
    for key in [&signer_pub, &second_pub] {
        std::fs::remove_file(&pulled).unwrap();
        let run = ok(&["pull", &url, "--plain-http", "--key", key, "-o", &pulled]);
        assert!(run.out.contains("signed by key"), "{}", run.out);
        assert_eq!(read(&pulled), read(&compiled));
    }
    refused(
        &[
            "pull",
            &url,
            "--plain-http",
            "--key",
            &stranger_pub,
            "-o",
            &pulled,
        ],
        1,
        "signature",
    );
    // Plain HTTP only when asked for.
    refused(
        &["pull", &url, "--key", &signer_pub, "-o", &pulled],
        1,
        "pull it with `--plain-http`",
    );
    // A pin to the digest.
    let pinned = format!("{}/site/payments@{digest}", nginx.url());
    ok(&[
        "pull",
        &pinned,
        "--plain-http",
        "--key",
        &signer_pub,
        "-o",
        &pulled,
    ]);

    // The tag moved to an unsigned artifact: refused.
    let other = dir.write("other.sluice", OTHER_POLICY);
    let other_digest = ok(&["push", &other, &target]).out.trim().to_owned();
    assert_ne!(other_digest, digest);
    refused(
        &[
            "pull",
            &url,
            "--plain-http",
            "--key",
            &signer_pub,
            "-o",
            &pulled,
        ],
        1,
        "unsigned",
    );

    // References that are not a layout's.
    refused(
        &["push", &policy, &format!("oci:{}", layout.display())],
        2,
        "is not an image layout reference `oci:DIR:TAG`",
    );
    refused(
        &[
            "sign",
            &format!("oci:{}:v9", layout.display()),
            "--key",
            &signer_key,
        ],
        1,
        "the layout tags no manifest `v9`",
    );
    refused(
        &[
            "sign",
            &target,
            "--key",
            &signer_key,
            "--identity",
            "https://x/y",
        ],
        1,
        "is not a reference",
    );
}

/// Runs skopeo with a policy that accepts anything (the test checks
/// signatures with Sluice, not skopeo); panics when it fails.
#[track_caller]
fn skopeo(args: &[&str]) -> String {
    let output = Command::new(SKOPEO)
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    let text = format!(
        "$ skopeo {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{text}");
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn skopeo_copies_artifacts_and_signatures_between_a_registry_and_a_layout() {
    if !Path::new(SKOPEO).is_file() {
        sluice_testkit::skip(
            "the skopeo interop test",
            &format!("`{SKOPEO}` is missing (apt-get install skopeo)"),
        );
        return;
    }
    let Some(registry) = TestRegistry::start("the skopeo interop test") else {
        return;
    };
    let dir = Scratch::new("skopeo");
    let Some(nginx) = TestNginx::start("the skopeo interop test", &dir.0) else {
        return;
    };
    let signer = PrivateKey::generate().unwrap();
    let signer_key = dir.write("signer.key", signer.to_pem());
    let signer_pub = dir.write("signer.pub", signer.public_key().to_pem());
    let policy = dir.write("policy.sluice", POLICY);
    let compiled = dir.path("compiled.bin");
    ok(&["compile", &policy, "-o", &compiled]);
    let pulled = dir.path("pulled.bin");

    // Registry to layout: sluice pushes and signs in the registry, skopeo
    // copies the artifact and its signature tag into a layout, nginx serves
    // it, and sluice pulls and verifies it over HTTP.
    let reference = format!("oci://{}/team/policy:v1", registry.addr());
    let digest = ok(&["push", &policy, &reference, "--plain-http"])
        .out
        .trim()
        .to_owned();
    ok(&["sign", &reference, "--key", &signer_key, "--plain-http"]);
    let sig_tag = signature::signature_tag(&digest).unwrap();
    let copied = dir.0.join("site/copied");
    // skopeo creates the layout folder, not its parent.
    std::fs::create_dir_all(dir.0.join("site")).unwrap();
    for tag in ["v1", sig_tag.as_str()] {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            &format!("docker://{}/team/policy:{tag}", registry.addr()),
            &format!("oci:{}:{tag}", copied.display()),
        ]);
    }
    let layout = LayoutDir::new(&copied);
    assert_eq!(layout.manifest("v1").unwrap().unwrap().digest, digest);
    assert_eq!(
        signed_references(&copied, &digest),
        [format!("{}/team/policy:v1", registry.addr())]
    );
    let url = format!("{}/site/copied:v1", nginx.url());
    let run = ok(&[
        "pull",
        &url,
        "--plain-http",
        "--key",
        &signer_pub,
        "-o",
        &pulled,
    ]);
    assert!(run.out.contains(&digest), "{}", run.out);
    assert_eq!(read(&pulled), read(&compiled));

    // Layout to registry: sluice pushes and signs into a layout naming the
    // repository it will be copied to, skopeo copies both tags into the
    // registry, and sluice pulls and verifies there (where the signature's
    // repository is checked).
    let other = dir.write("other.sluice", OTHER_POLICY);
    let written = dir.0.join("written");
    let target = format!("oci:{}:v2", written.display());
    let other_digest = ok(&["push", &other, &target]).out.trim().to_owned();
    let mirror = format!("{}/mirror/policy", registry.addr());
    ok(&[
        "sign",
        &target,
        "--key",
        &signer_key,
        "--identity",
        &format!("{mirror}:v2"),
    ]);
    let other_sig_tag = signature::signature_tag(&other_digest).unwrap();
    for tag in ["v2", other_sig_tag.as_str()] {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            &format!("oci:{}:{tag}", written.display()),
            &format!("docker://{mirror}:{tag}"),
        ]);
    }
    std::fs::remove_file(&pulled).unwrap();
    let run = ok(&[
        "pull",
        &format!("oci://{mirror}:v2"),
        "--plain-http",
        "--key",
        &signer_pub,
        "-o",
        &pulled,
    ]);
    assert!(run.out.contains(&other_digest), "{}", run.out);

    // Signed in the layout without `--identity`, the payload names the
    // folder (`written:v3`): a registry pull checks the repository and
    // refuses it (over HTTP only key and digest count: see above).
    let target = format!("oci:{}:v3", written.display());
    // The same policy gives the same artifact in a layout as in a registry.
    assert_eq!(ok(&["push", &policy, &target]).out.trim(), digest);
    ok(&["sign", &target, "--key", &signer_key]);
    assert_eq!(signed_references(&written, &digest), ["written:v3"]);
    for tag in ["v3", sig_tag.as_str()] {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            &format!("oci:{}:{tag}", written.display()),
            &format!("docker://{mirror}:{tag}"),
        ]);
    }
    refused(
        &[
            "pull",
            &format!("oci://{mirror}:v3"),
            "--plain-http",
            "--key",
            &signer_pub,
            "-o",
            &pulled,
        ],
        1,
        "written:v3",
    );
}
