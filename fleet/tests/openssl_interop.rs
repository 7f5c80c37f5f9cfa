//! Interop with openssl, the peer that makes and checks the same ECDSA
//! P-256/SHA-256 DER signatures as cosign (Debian's skopeo cannot: its
//! sigstore support is patched out, see docs/distribution.md). openssl
//! makes keys and signatures that Sluice reads and verifies; Sluice makes
//! keys and signatures that openssl reads and verifies. Skipped without
//! openssl, a failure under CI (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sluice_fleet::artifact::sha256_digest;
use sluice_fleet::keys::{generate_files, PrivateKey, PublicKey};
use sluice_fleet::signature::{
    payload, sign, verify, verify_payload, IdentityPolicy, SignatureError, SIGNATURE_ANNOTATION,
};

const REFERENCE: &str = "127.0.0.1:5000/team/policy:v1";

fn repository() -> IdentityPolicy {
    IdentityPolicy::Repository("127.0.0.1:5000/team/policy".into())
}

/// A fresh temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sluice-fleet-openssl-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

/// An openssl P-256 key pair in `dir`: `NAME.pem` (PKCS#8) and `NAME.pub`.
fn openssl_key(dir: &TempDir, name: &str) -> (PathBuf, PathBuf) {
    let (pem, public) = (format!("{name}.pem"), format!("{name}.pub"));
    openssl(
        &dir.0,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &pem,
        ],
    );
    openssl(&dir.0, &["pkey", "-in", &pem, "-pubout", "-out", &public]);
    (dir.path(&pem), dir.path(&public))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn openssl_signatures_verify_in_sluice() {
    if !have_openssl("openssl interop") {
        return;
    }
    let dir = TempDir::new("signs");
    let (key, public) = openssl_key(&dir, "k");
    let digest = sha256_digest(b"the artifact manifest");
    std::fs::write(dir.path("payload.json"), payload(REFERENCE, &digest)).unwrap();
    openssl(
        &dir.0,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "k.pem",
            "-out",
            "sig.der",
            "payload.json",
        ],
    );
    let signed = std::fs::read(dir.path("payload.json")).unwrap();
    let signature = std::fs::read(dir.path("sig.der")).unwrap();
    let public = PublicKey::from_pem(&read(&public)).unwrap();

    let v = verify_payload(
        &signed,
        &signature,
        std::slice::from_ref(&public),
        &digest,
        &repository(),
    )
    .unwrap();
    assert_eq!(v.docker_reference, REFERENCE);
    // The key id is the sha256 of the DER SubjectPublicKeyInfo.
    openssl(
        &dir.0,
        &[
            "pkey", "-pubin", "-in", "k.pub", "-outform", "DER", "-out", "k.der",
        ],
    );
    let spki = std::fs::read(dir.path("k.der")).unwrap();
    assert_eq!(v.key_id, sha256_digest(&spki)[7..23]);

    // The same signature as a cosign layer (base64 in the annotation).
    let mut descriptor = sluice_fleet::artifact::Descriptor::of(
        sluice_fleet::signature::SIMPLE_SIGNING_MEDIA_TYPE,
        &signed,
    );
    descriptor.annotations = Some(
        [(
            SIGNATURE_ANNOTATION.to_string(),
            base64::engine::general_purpose::STANDARD.encode(&signature),
        )]
        .into(),
    );
    assert!(verify(
        &[(descriptor, signed.clone())],
        std::slice::from_ref(&public),
        &digest,
        &repository()
    )
    .is_ok());

    // openssl's PKCS#8 private key (with its curve parameters) loads in
    // ring and is the same key.
    assert_eq!(
        PrivateKey::from_pem(&read(&key)).unwrap().public_key(),
        public
    );

    // Refusals: a changed payload, another key, another digest.
    let mut tampered = signed.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    assert!(matches!(
        verify_payload(
            &tampered,
            &signature,
            std::slice::from_ref(&public),
            &digest,
            &repository()
        ),
        Err(SignatureError::BadSignature { .. })
    ));
    let (_, other) = openssl_key(&dir, "other");
    let other = PublicKey::from_pem(&read(&other)).unwrap();
    assert_eq!(
        verify_payload(
            &signed,
            &signature,
            std::slice::from_ref(&other),
            &digest,
            &repository()
        ),
        Err(SignatureError::BadSignature {
            keys: vec![other.key_id()]
        })
    );
    let another = sha256_digest(b"another manifest");
    assert_eq!(
        verify_payload(&signed, &signature, &[public], &another, &repository()),
        Err(SignatureError::WrongDigest {
            signed: digest,
            expected: another
        })
    );
}

#[test]
fn sluice_signatures_verify_in_openssl() {
    if !have_openssl("openssl interop") {
        return;
    }
    let dir = TempDir::new("verifies");
    let (key_path, pub_path, public) = generate_files(&dir.path("sluice")).unwrap();
    let key = PrivateKey::from_pem(&read(&key_path)).unwrap();
    let digest = sha256_digest(b"the artifact manifest");
    let blob = sign(&key, REFERENCE, &digest).unwrap();
    let annotation = &blob.descriptor.annotations.as_ref().unwrap()[SIGNATURE_ANNOTATION];
    let der = base64::engine::general_purpose::STANDARD
        .decode(annotation)
        .unwrap();
    std::fs::write(dir.path("payload.json"), &blob.bytes).unwrap();
    std::fs::write(dir.path("sig.der"), &der).unwrap();
    let out = openssl(
        &dir.0,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "sluice.pub",
            "-signature",
            "sig.der",
            "payload.json",
        ],
    );
    assert_eq!(out.trim(), "Verified OK");

    // openssl reads Sluice's private key and derives the same public key.
    let derived = openssl(&dir.0, &["pkey", "-in", "sluice.key", "-pubout"]);
    assert_eq!(derived, read(&pub_path));
    assert_eq!(PublicKey::from_pem(&derived).unwrap(), public);

    // openssl refuses the signature over a changed payload.
    let mut tampered = blob.bytes.clone();
    tampered[5] ^= 1;
    std::fs::write(dir.path("tampered.json"), &tampered).unwrap();
    let refused = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "sluice.pub",
            "-signature",
            "sig.der",
            "tampered.json",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("Verification failure"));
}

#[test]
fn openssl_sec1_keys_are_read() {
    if !have_openssl("openssl interop") {
        return;
    }
    let dir = TempDir::new("sec1");
    openssl(
        &dir.0,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.pem",
        ],
    );
    openssl(
        &dir.0,
        &["ec", "-in", "sec1.pem", "-pubout", "-out", "sec1.pub"],
    );
    let pem = read(&dir.path("sec1.pem"));
    assert!(pem.contains("-----BEGIN EC PRIVATE KEY-----"));
    let key = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(
        key.public_key(),
        PublicKey::from_pem(&read(&dir.path("sec1.pub"))).unwrap()
    );
    std::fs::write(dir.path("m"), b"message").unwrap();
    std::fs::write(dir.path("m.sig"), key.sign(b"message").unwrap()).unwrap();
    let out = openssl(
        &dir.0,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "sec1.pub",
            "-signature",
            "m.sig",
            "m",
        ],
    );
    assert_eq!(out.trim(), "Verified OK");
}
