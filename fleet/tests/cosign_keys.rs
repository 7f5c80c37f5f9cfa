//! cosign's encrypted private keys made by cosign, not here: the fixtures
//! in `tests/fixtures/cosign/` (see its README for where each comes from)
//! open with their published passwords, hold the key of their `.pub`, and
//! sign what openssl verifies; a wrong password, a changed ciphertext and
//! scrypt costs outside the bound are refused. The openssl half is skipped
//! without openssl, a failure under CI (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sluice_fleet::keys::{KeyError, PrivateKey, PublicKey};

/// The fixtures: file stem, PEM label, password.
const KEYS: [(&str, &str, &[u8]); 3] = [
    // cosign's own test key in the label cosign 2 writes.
    ("sigstore-hello", "ENCRYPTED SIGSTORE PRIVATE KEY", b"hello"),
    // cosign's own test key in the label of cosign before 2.0.
    ("cosign-hello", "ENCRYPTED COSIGN PRIVATE KEY", b"hello"),
    // `cosign generate-key-pair` with an empty password (N = 65536).
    (
        "cosign2-empty-password",
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        b"",
    ),
];

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cosign")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(fixture(file)).unwrap()
}

/// The JSON inside an encrypted PEM with `label`.
fn sealed_json(pem: &str, label: &str) -> serde_json::Value {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).unwrap() + begin.len();
    let stop = pem.find(&end).unwrap();
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// A PEM with `label` around `json`.
fn pem_of(json: &serde_json::Value, label: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(json).unwrap());
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

#[test]
fn cosign_made_keys_open_with_their_passwords_and_match_their_public_keys() {
    for (stem, _, password) in KEYS {
        let pem = read(&format!("{stem}.key"));
        let key = PrivateKey::from_pem_with_password(&pem, Some(password))
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let public = PublicKey::from_pem(&read(&format!("{stem}.pub"))).unwrap();
        assert_eq!(key.public_key(), public, "{stem}");
        assert_eq!(key.public_key().key_id(), public.key_id());
        let signature = key.sign(b"bundle digest").unwrap();
        assert!(public.verify(b"bundle digest", &signature), "{stem}");

        let err = PrivateKey::from_pem(&pem).unwrap_err();
        assert_eq!(err, KeyError::PasswordRequired, "{stem}");
        assert!(err.to_string().contains("`COSIGN_PASSWORD`"));
    }
}

#[test]
fn cosign_made_keys_refuse_a_wrong_password_and_a_changed_ciphertext() {
    for (stem, label, password) in KEYS {
        let pem = read(&format!("{stem}.key"));
        for wrong in [&b"hellO"[..], b"hello ", b"", b"wrong"] {
            if wrong == password {
                continue;
            }
            let err = PrivateKey::from_pem_with_password(&pem, Some(wrong)).unwrap_err();
            assert_eq!(err, KeyError::WrongPassword, "{stem}");
            assert!(err
                .to_string()
                .starts_with("wrong password or corrupted key"));
        }
        // One bit changed in the tag, then in the encrypted key.
        let b64 = base64::engine::general_purpose::STANDARD;
        for at in [0, 100] {
            let mut json = sealed_json(&pem, label);
            let mut boxed = b64.decode(json["ciphertext"].as_str().unwrap()).unwrap();
            boxed[at] ^= 0x20;
            json["ciphertext"] = b64.encode(&boxed).into();
            assert_eq!(
                PrivateKey::from_pem_with_password(&pem_of(&json, label), Some(password))
                    .unwrap_err(),
                KeyError::WrongPassword,
                "{stem} byte {at}"
            );
        }
        // The nonce changed: the stream and the tag key change with it.
        let mut json = sealed_json(&pem, label);
        json["cipher"]["nonce"] = b64.encode([0u8; 24]).into();
        assert_eq!(
            PrivateKey::from_pem_with_password(&pem_of(&json, label), Some(password)).unwrap_err(),
            KeyError::WrongPassword
        );
        // Unchanged, it still opens: the refusals above are the changes'.
        let json = sealed_json(&pem, label);
        assert!(PrivateKey::from_pem_with_password(&pem_of(&json, label), Some(password)).is_ok());
    }
}

#[test]
fn scrypt_costs_outside_the_bound_are_refused_on_a_cosign_made_key() {
    let (stem, label, password) = KEYS[0];
    let pem = read(&format!("{stem}.key"));
    for (n, r, p) in [
        (1u64 << 14, 8u64, 1u64),
        (1 << 18, 8, 1),
        (1 << 30, 8, 1),
        (32768, 1, 1),
        (32768, 8, 4),
    ] {
        let mut json = sealed_json(&pem, label);
        json["kdf"]["params"] = serde_json::json!({ "N": n, "r": r, "p": p });
        let started = std::time::Instant::now();
        let err =
            PrivateKey::from_pem_with_password(&pem_of(&json, label), Some(password)).unwrap_err();
        assert_eq!(err, KeyError::ScryptCost { n, r, p });
        // Refused before any derivation (N = 2^30 would need 128 GiB).
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// Whether openssl runs here; otherwise skips (fails under CI).
fn have_openssl(what: &str) -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            sluice_testkit::skip(what, "`openssl` is not installed");
            false
        }
    }
}

/// Runs openssl with `args` in `dir`; its stdout, or a panic with stderr.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cosign_made_keys_sign_what_openssl_verifies_with_their_public_keys() {
    if !have_openssl("cosign_made_keys_sign_what_openssl_verifies_with_their_public_keys") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sluice-fleet-cosign-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (stem, _, password) in KEYS {
        let key = PrivateKey::from_pem_with_password(&read(&format!("{stem}.key")), Some(password))
            .unwrap();
        let public = fixture(&format!("{stem}.pub"));
        let public = public.to_str().unwrap();

        // openssl derives the public key from the opened private key on its
        // own: the fixture's .pub.
        std::fs::write(dir.join("opened.pem"), key.to_pem()).unwrap();
        let derived = openssl(&dir, &["pkey", "-in", "opened.pem", "-pubout"]);
        assert_eq!(
            PublicKey::from_pem(&derived).unwrap(),
            PublicKey::from_pem(&read(&format!("{stem}.pub"))).unwrap(),
            "{stem}"
        );

        // Sluice signs; openssl verifies with the fixture's .pub.
        let message = format!("{{\"critical\":{{\"image\":\"{stem}\"}}}}");
        std::fs::write(dir.join("message"), &message).unwrap();
        std::fs::write(
            dir.join("message.sig"),
            key.sign(message.as_bytes()).unwrap(),
        )
        .unwrap();
        let verified = openssl(
            &dir,
            &[
                "dgst",
                "-sha256",
                "-verify",
                public,
                "-signature",
                "message.sig",
                "message",
            ],
        );
        assert_eq!(verified.trim(), "Verified OK", "{stem}");

        // A changed message does not verify.
        std::fs::write(dir.join("changed"), format!("{message} ")).unwrap();
        let out = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                public,
                "-signature",
                "message.sig",
                "changed",
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{stem}: a changed message verified");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
