//! cosign's encrypted private keys at the command line: `sluice sign --key`
//! opens one with the password in `COSIGN_PASSWORD` (cosign's variable),
//! and `sluice keys generate --encrypt` writes one. The key made by cosign
//! is the fleet crate's fixture (fleet/tests/fixtures/cosign/README.md).
//! Signing runs against Debian's `docker-registry` on loopback
//! (sluice-testkit's `TestRegistry`).

use std::path::PathBuf;
use std::process::Command;

use sluice_fleet::keys::{PrivateKey, PublicKey};
use sluice_testkit::registry::TestRegistry;

const POLICY: &str = r#"
server web {
  port 8080
  route metrics { method GET  path "/metrics" }
}
allow scrape { to web.metrics  from network 10.0.0.0/8 }
"#;

/// What one run printed, and its exit code.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `sluice ARGS` with `COSIGN_PASSWORD` set to `password`, or unset
/// (whatever the test's own environment holds).
fn sluice(args: &[&str], password: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.args(args);
    match password {
        Some(p) => command.env("COSIGN_PASSWORD", p),
        None => command.env_remove("COSIGN_PASSWORD"),
    };
    let out = command.output().expect("run sluice");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ COSIGN_PASSWORD={password:?} sluice {}\n[exit {}]\n{}\n[stderr]\n{}",
        args.join(" "),
        run.code,
        run.out,
        run.err
    );
    run
}

#[track_caller]
fn ok(args: &[&str], password: Option<&str>) -> Run {
    let run = sluice(args, password);
    assert_eq!(run.code, 0, "{}", run.err);
    run
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
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file of the fleet crate's cosign fixtures.
fn fixture(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fleet/tests/fixtures/cosign")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn sign_opens_a_cosign_made_key_with_cosign_password() {
    let Some(registry) = TestRegistry::start("sluice sign with cosign's encrypted key") else {
        return;
    };
    let dir = Scratch::new("cosign-keys-sign");
    let policy = dir.path("policy.sluice");
    std::fs::write(&policy, POLICY).unwrap();
    let reference = format!("oci://{}/team/policy:v1", registry.addr());
    ok(&["push", &policy, &reference, "--plain-http"], None);
    let key = fixture("sigstore-hello.key");
    let public = fixture("sigstore-hello.pub");
    let key_id = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap())
        .unwrap()
        .key_id();
    let sign = ["sign", reference.as_str(), "--key", &key, "--plain-http"];

    // Without COSIGN_PASSWORD: told to set it; nothing signed.
    let run = sluice(&sign, None);
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(run.err.contains("set `COSIGN_PASSWORD`"), "{}", run.err);
    // A wrong one: refused as such.
    let run = sluice(&sign, Some("hellO"));
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(
        run.err.contains("wrong password or corrupted key"),
        "{}",
        run.err
    );
    let pulled = dir.path("pulled.bin");
    let pull = [
        "pull",
        reference.as_str(),
        "--key",
        &public,
        "-o",
        &pulled,
        "--plain-http",
    ];
    assert_ne!(sluice(&pull, None).code, 0, "pulled before any signature");

    // The right one: signed with the key of the fixture's .pub, which a
    // pull then accepts.
    let run = ok(&sign, Some("hello"));
    assert!(run.out.contains(&key_id), "{}", run.out);
    let run = ok(&pull, None);
    assert!(run.out.contains(&key_id), "{}", run.out);
}

#[test]
fn keys_generate_encrypt_writes_cosigns_format_under_cosign_password() {
    let dir = Scratch::new("cosign-keys-generate");
    let prefix = dir.path("release");

    // --encrypt without COSIGN_PASSWORD: refused, no file written.
    let run = sluice(&["keys", "generate", "--out", &prefix, "--encrypt"], None);
    assert_eq!(run.code, 2, "{}", run.err);
    assert!(run.err.contains("`COSIGN_PASSWORD`"), "{}", run.err);
    assert!(!PathBuf::from(format!("{prefix}.key")).exists());

    let run = ok(
        &["keys", "generate", "--out", &prefix, "--encrypt"],
        Some("s3cret pass"),
    );
    let pem = std::fs::read_to_string(format!("{prefix}.key")).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        "{pem}"
    );
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(format!("{prefix}.pub")).unwrap()).unwrap();
    assert!(run.out.contains(&public.key_id()), "{}", run.out);
    let key = PrivateKey::from_pem_with_password(&pem, Some(b"s3cret pass")).unwrap();
    assert_eq!(key.public_key(), public);
    assert!(PrivateKey::from_pem_with_password(&pem, Some(b"s3cret")).is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(format!("{prefix}.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
