//! `sluice push`, `sluice pull` and `sluice sign` against a real registry:
//! Debian's `docker-registry` on loopback (sluice-testkit's `TestRegistry`).

use sluice_fleet::artifact::Descriptor;
use sluice_fleet::keys::PrivateKey;
use sluice_fleet::registry::{sha256_digest, OciRef, Registry};
use sluice_fleet::signature::{
    signature_manifest, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
mod support;

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

fn sluice(args: &[&str]) -> Run {
    run_sluice(args, "")
}

#[track_caller]
fn ok(args: &[&str]) -> Run {
    let run = sluice(args);
    assert_eq!(run.code, 0, "{}", run.err);
    run
}

#[track_caller]
fn refused(args: &[&str], message: &str) {
    let run = sluice(args);
    assert_eq!(run.code, 1, "{}", run.err);
    assert!(run.err.contains(message), "{}", run.err);
    assert!(run.out.is_empty(), "{}", run.out);
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sluice-cli-{name}-{}", std::process::id()));
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

/// Keys made here: a signer's, and one that signed nothing.
fn keys(dir: &Scratch) -> (String, String, String) {
    let signer = PrivateKey::generate().unwrap();
    let stranger = PrivateKey::generate().unwrap();
    (
        dir.write("signer.key", signer.to_pem()),
        dir.write("signer.pub", signer.public_key().to_pem()),
        dir.write("stranger.pub", stranger.public_key().to_pem()),
    )
}

#[test]
fn push_pull_sign_and_refusals() {
    let Some(registry) = TestRegistry::start("sluice push/pull/sign against a registry") else {
        return;
    };
    let dir = Scratch::new("registry");
    let (signer_key, signer_pub, stranger_pub) = keys(&dir);
    let policy = dir.write("policy.sluice", POLICY);
    let compiled = dir.path("compiled.bin");
    ok(&["compile", &policy, "-o", &compiled]);
    let reference = format!("oci://{}/team/policy:v1", registry.addr());

    // Push a policy: the digest is printed; pulled back, the bundle is the
    // one `sluice compile` writes.
    let digest = ok(&["push", &policy, &reference, "--plain-http"])
        .out
        .trim()
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let pulled = dir.path("pulled.bin");
    let run = ok(&[
        "pull",
        &reference,
        "-o",
        &pulled,
        "--allow-unsigned",
        "--plain-http",
    ]);
    assert!(
        run.out.contains(&digest) && run.out.contains("unsigned"),
        "{}",
        run.out
    );
    assert_eq!(read(&pulled), read(&compiled));
    // Pushing the same policy again gives the same digest.
    assert_eq!(
        ok(&["push", &policy, &reference, "--plain-http"])
            .out
            .trim(),
        digest
    );

    // By digest pin.
    let pinned = format!("oci://{}/team/policy@{digest}", registry.addr());
    let by_pin = dir.path("pinned.bin");
    ok(&[
        "pull",
        &pinned,
        "-o",
        &by_pin,
        "--allow-unsigned",
        "--plain-http",
    ]);
    assert_eq!(read(&by_pin), read(&compiled));

    // Without `--plain-http` the client speaks TLS, which this registry does not.
    let run = sluice(&["pull", &reference, "-o", &pulled, "--allow-unsigned"]);
    assert_ne!(run.code, 0);
    // Neither keys nor `--allow-unsigned`: a usage error.
    let run = sluice(&["pull", &reference, "-o", &pulled, "--plain-http"]);
    assert_eq!(run.code, 2, "{}", run.err);

    // Unsigned, with keys: refused, and nothing is written.
    let refused_out = dir.path("refused.bin");
    let with_signer = [
        "pull",
        &reference,
        "-o",
        &refused_out,
        "--key",
        &signer_pub,
        "--plain-http",
    ];
    refused(&with_signer, "unsigned");
    assert!(!Path::new(&refused_out).exists());

    // Signed: the right key accepts, another refuses.
    let run = ok(&["sign", &reference, "--key", &signer_key, "--plain-http"]);
    assert!(run.out.contains(&digest), "{}", run.out);
    let run = ok(&with_signer);
    assert!(run.out.contains("signed by key"), "{}", run.out);
    assert_eq!(read(&refused_out), read(&compiled));
    std::fs::remove_file(&refused_out).unwrap();
    let with_stranger = [
        "pull",
        &reference,
        "-o",
        &refused_out,
        "--key",
        &stranger_pub,
        "--plain-http",
    ];
    refused(&with_stranger, "does not verify with any trusted key");
    assert!(!Path::new(&refused_out).exists());
    // Either of several keys will do.
    ok(&[
        "pull",
        &reference,
        "-o",
        &refused_out,
        "--key",
        &stranger_pub,
        "--key",
        &signer_pub,
        "--plain-http",
    ]);
    std::fs::remove_file(&refused_out).unwrap();

    // The tag moved to an unsigned artifact: refused with keys, though the
    // old digest, pinned, still verifies.
    let other = dir.write("other.sluice", OTHER_POLICY);
    let moved = ok(&["push", &other, &reference, "--plain-http"])
        .out
        .trim()
        .to_owned();
    assert_ne!(moved, digest);
    refused(&with_signer, "unsigned");
    ok(&[
        "pull",
        &pinned,
        "-o",
        &by_pin,
        "--key",
        &signer_pub,
        "--plain-http",
    ]);

    // A compiled bundle with its source beside it.
    let bundle_ref = format!("oci://{}/team/bundle:v1", registry.addr());
    ok(&[
        "push",
        &compiled,
        &bundle_ref,
        "--source",
        &policy,
        "--plain-http",
    ]);
    let from_bundle = dir.path("from-bundle.bin");
    ok(&[
        "pull",
        &bundle_ref,
        "-o",
        &from_bundle,
        "--allow-unsigned",
        "--plain-http",
    ]);
    assert_eq!(read(&from_bundle), read(&compiled));
    // `--source` with a policy is a mistake.
    refused(
        &[
            "push",
            &policy,
            &bundle_ref,
            "--source",
            &policy,
            "--plain-http",
        ],
        "--source",
    );

    // A reference that is not ours.
    let run = sluice(&["push", &policy, "docker://h/p:v1", "--plain-http"]);
    assert_ne!(run.code, 0);
    assert!(run.err.contains("`docker://h/p:v1`"), "{}", run.err);

    // A bundle blob altered in the registry's storage (the registry serves
    // it under its old digest): refused, signed or not.
    let blob = registry.blob_file(&sha256_digest(&read(&compiled)));
    let mut stored = read(&blob);
    let last = stored.len() - 1;
    stored[last] ^= 0x01;
    std::fs::write(&blob, &stored).unwrap();
    let tampered = dir.path("tampered.bin");
    refused(
        &[
            "pull",
            &pinned,
            "-o",
            &tampered,
            "--key",
            &signer_pub,
            "--plain-http",
        ],
        "does not match its digest",
    );
    refused(
        &[
            "pull",
            &bundle_ref,
            "-o",
            &tampered,
            "--allow-unsigned",
            "--plain-http",
        ],
        "does not match its digest",
    );
    assert!(!Path::new(&tampered).exists());
}

/// `sluice sign`'s signature, fetched from the registry as any cosign
/// client would (the `sha256-<hex>.sig` manifest, its simple-signing layer
/// and annotation), verifies with openssl.
#[test]
fn signature_in_the_registry_verifies_with_openssl() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        sluice_testkit::skip("the openssl check of a pushed signature", "no `openssl`");
        return;
    }
    let Some(registry) = TestRegistry::start("the openssl check of a pushed signature") else {
        return;
    };
    let dir = Scratch::new("registry-openssl");
    let (signer_key, signer_pub, _) = keys(&dir);
    let policy = dir.write("policy.sluice", POLICY);
    let reference = format!("oci://{}/team/signed:v1", registry.addr());
    let digest = ok(&["push", &policy, &reference, "--plain-http"])
        .out
        .trim()
        .to_owned();
    ok(&["sign", &reference, "--key", &signer_key, "--plain-http"]);

    let target = OciRef::parse(&reference).unwrap();
    let client = Registry::new(true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sig_ref = target.signature_tag(&digest);
    let manifest = runtime.block_on(client.pull_manifest(&sig_ref)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = &layers[0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = runtime
        .block_on(client.pull_blob(&target, layer["digest"].as_str().unwrap(), 1 << 16))
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        parsed["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        parsed["critical"]["type"],
        "cosign container image signature"
    );
    let payload_file = dir.write("payload.json", &payload);
    let b64 = dir.write(
        "sig.b64",
        layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap(),
    );
    let der = dir.path("sig.der");
    let decoded = Command::new("openssl")
        .args(["base64", "-d", "-A", "-in", &b64, "-out", &der])
        .status()
        .unwrap();
    assert!(decoded.success());
    let verified = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            &signer_pub,
            "-signature",
            &der,
            &payload_file,
        ])
        .output()
        .unwrap();
    assert!(
        verified.status.success()
            && String::from_utf8_lossy(&verified.stdout).contains("Verified OK"),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // A changed payload does not verify.
    let mut changed = payload.clone();
    changed[0] = b' ';
    let changed_file = dir.write("changed.json", &changed);
    let refused = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            &signer_pub,
            "-signature",
            &der,
            &changed_file,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// A signature made by openssl in cosign's layout (payload, `openssl dgst
/// -sign`, the `.sig` manifest) is accepted by `sluice pull --key`; one
/// naming another repository is refused.
#[test]
fn openssl_signature_in_the_registry_is_accepted() {
    if Command::new("openssl").arg("version").output().is_err() {
        sluice_testkit::skip("the openssl-signed pull", "no `openssl`");
        return;
    }
    let Some(registry) = TestRegistry::start("the openssl-signed pull") else {
        return;
    };
    let dir = Scratch::new("registry-openssl-signed");
    let key = dir.path("openssl.pem");
    let public = dir.path("openssl.pub");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-in", &key, "-pubout", "-out", &public])
        .status()
        .unwrap();
    assert!(made.success());
    let policy = dir.write("policy.sluice", POLICY);
    let target = OciRef::parse(&format!("oci://{}/team/foreign:v1", registry.addr())).unwrap();
    let digest = ok(&["push", &policy, &target.to_string(), "--plain-http"])
        .out
        .trim()
        .to_owned();
    let client = Registry::new(true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = dir.path("pulled.bin");
    for (identity, accepted) in [
        (format!("{}/team/foreign", registry.addr()), true),
        (format!("{}/team/elsewhere:v1", registry.addr()), false),
    ] {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"creator":"openssl"}}}}"#
        );
        let payload_file = dir.write("payload.json", &payload);
        let der = dir.path("sig.der");
        let signed = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-sign",
                &key,
                "-out",
                &der,
                &payload_file,
            ])
            .status()
            .unwrap();
        assert!(signed.success());
        let b64 = Command::new("openssl")
            .args(["base64", "-A", "-in", &der])
            .output()
            .unwrap();
        assert!(b64.status.success());
        let mut layer = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, payload.as_bytes());
        layer.annotations = Some(
            [(
                SIGNATURE_ANNOTATION.to_owned(),
                String::from_utf8(b64.stdout).unwrap().trim().to_owned(),
            )]
            .into(),
        );
        let manifest = signature_manifest(&[layer]);
        let sig_ref = target.signature_tag(&digest);
        runtime.block_on(async {
            client
                .push_blob(&sig_ref, payload.as_bytes())
                .await
                .unwrap();
            client
                .push_blob(&sig_ref, &manifest.config.bytes)
                .await
                .unwrap();
            client
                .push_manifest(&sig_ref, &manifest.manifest_bytes)
                .await
                .unwrap();
        });
        let args = [
            "pull",
            &target.to_string(),
            "-o",
            &out,
            "--key",
            &public,
            "--plain-http",
        ];
        if accepted {
            let run = ok(&args);
            assert!(run.out.contains("signed by key"), "{}", run.out);
        } else {
            refused(&args, "team/elsewhere");
        }
    }
}
