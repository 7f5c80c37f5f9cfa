//! Replays the checked-in fuzz corpus of sluice-fleet's parsers
//! (`fuzz/corpus/artifact`) through the function the fuzz target calls, and
//! keeps its seeds fresh: each seed is a selector byte
//! (`sluice_fleet::fuzz::MANIFEST`, ...) and an input made here from real
//! artifacts, signatures, indexes, references and keys. After a change to
//! the artifact's shape or the bundle format, regenerate them with
//! `SLUICE_BLESS=1 cargo test -p sluice-fleet --test fuzz_corpus`.

use base64::Engine;
use sluice_fleet::artifact::{self, bundle_media_type, Artifact, FORMAT_VERSION_ANNOTATION};
use sluice_fleet::fuzz::{self, manifest_and_blobs, PAYLOAD_DIGEST, PAYLOAD_REPOSITORY};
use sluice_fleet::keys::{PrivateKey, PublicKey};
use sluice_fleet::layout::{Index, IndexEntry};
use sluice_fleet::signature::{self, SIGNATURE_ANNOTATION};
use sluice_runtime::bundle::FORMAT_VERSION;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const POLICY: &str = r#"
mesh { trust-domain "td" }
server web { port 80  route api { method GET  path prefix "/api" } }
allow a { to web.api  from authenticated }
"#;

fn corpus_dir() -> PathBuf {
    sluice_testkit::repository().join("fuzz/corpus/artifact")
}

fn fixture(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cosign")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

fn built() -> Artifact {
    let (policy, diags) = sluice_lang::parse::parse_str("p.sluice", POLICY);
    assert!(diags.is_empty(), "{diags:?}");
    let bundle = sluice_compiler::compile(&policy, &sluice_compiler::Config::default())
        .expect("compiles")
        .bundle;
    artifact::build(&bundle, POLICY.as_bytes(), Some("2026-12-07T00:00:00Z")).unwrap()
}

/// A [`fuzz::MANIFEST`] input: the manifest, a NUL byte, then config,
/// bundle and source.
fn manifest_input(manifest: &[u8], a: &Artifact) -> Vec<u8> {
    [
        &[fuzz::MANIFEST][..],
        manifest,
        &[0],
        &a.config.bytes,
        &a.bundle.bytes,
        &a.source.bytes,
    ]
    .concat()
}

/// The SEC1 `ECPrivateKey` inside a PKCS#8 P-256 key: the content of the
/// OCTET STRING after the version and the algorithm.
fn sec1_of(pkcs8: &[u8]) -> Vec<u8> {
    // SEQUENCE header (short or one-byte long form), INTEGER 0, the
    // 21-byte AlgorithmIdentifier, then OCTET STRING.
    let body = if pkcs8[1] & 0x80 == 0 { 2 } else { 3 };
    let octets = body + 3 + 21;
    assert_eq!(pkcs8[octets], 0x04, "an OCTET STRING");
    let (start, len) = if pkcs8[octets + 1] & 0x80 == 0 {
        (octets + 2, usize::from(pkcs8[octets + 1]))
    } else {
        (octets + 3, usize::from(pkcs8[octets + 2]))
    };
    pkcs8[start..start + len].to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Every seed: file name and content.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let a = built();
    let with = |selector: u8, input: &[u8]| [&[selector][..], input].concat();
    let hex = &PAYLOAD_DIGEST["sha256:".len()..];

    // An artifact of a bundle format version this Sluice does not read:
    // only its source layer is of use.
    let mut newer = a.manifest.clone();
    newer.layers[0].media_type = bundle_media_type(FORMAT_VERSION + 1);
    newer.annotations.as_mut().unwrap().insert(
        FORMAT_VERSION_ANNOTATION.to_owned(),
        (FORMAT_VERSION + 1).to_string(),
    );

    // A signature manifest with one signed layer, as cosign writes it (the
    // payload signed by cosign's own test key, see the fixtures' README).
    let mut layer = artifact::Descriptor::of(
        signature::SIMPLE_SIGNING_MEDIA_TYPE,
        fixture("payload.json").as_bytes(),
    );
    let der = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cosign/signature.der"),
    )
    .unwrap();
    layer.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(der),
    )]));
    let signatures = signature::signature_manifest(&[layer]);

    // An index with a tagged artifact, its signature, and an entry with a
    // field Sluice does not know.
    let mut index = Index::new();
    index.set("v1", IndexEntry::of_manifest(&a.manifest_bytes));
    index.set(
        &signature::signature_tag(&a.digest).unwrap(),
        IndexEntry::of_manifest(&signatures.manifest_bytes),
    );
    let mut platform = IndexEntry::of_manifest(b"{}");
    // Keys in sorted order: serde_json keeps insertion order when another
    // crate of the workspace turns on its `preserve_order` feature, and
    // sorts them otherwise; the seed must be the same bytes either way.
    platform.other.insert(
        "platform".to_owned(),
        serde_json::json!({"architecture": "amd64", "os": "linux"}),
    );
    index.set("other", platform);

    // cosign's own test key, opened once here, in the plain encodings.
    let key =
        PrivateKey::from_pem_with_password(&fixture("sigstore-hello.key"), Some(b"hello")).unwrap();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(
            key.to_pem()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();

    vec![
        ("manifest", manifest_input(&a.manifest_bytes, &a)),
        (
            "manifest-newer-format",
            manifest_input(&newer.to_bytes(), &a),
        ),
        (
            "signature-manifest",
            with(fuzz::SIGNATURE_MANIFEST, &signatures.manifest_bytes),
        ),
        (
            "payload",
            with(
                fuzz::PAYLOAD,
                &signature::payload(&format!("{PAYLOAD_REPOSITORY}:v1"), PAYLOAD_DIGEST),
            ),
        ),
        (
            "payload-other-repository",
            with(
                fuzz::PAYLOAD,
                &signature::payload("127.0.0.1:5000/team/other:v1", PAYLOAD_DIGEST),
            ),
        ),
        ("index", with(fuzz::INDEX, &index.to_bytes())),
        (
            "source-http-tag",
            with(
                fuzz::SOURCE_REF,
                b"http://127.0.0.1:8080/policies/payments:v1",
            ),
        ),
        (
            "source-https-pin",
            with(
                fuzz::SOURCE_REF,
                format!("https://cdn.example/p@sha256:{hex}").as_bytes(),
            ),
        ),
        (
            "source-registry",
            with(fuzz::SOURCE_REF, b"oci://127.0.0.1:5000/team/policy:v1"),
        ),
        (
            "oci-ref-tag",
            with(fuzz::OCI_REF, b"oci://[::1]:5000/team/policy:v1.2_rc-1"),
        ),
        (
            "oci-ref-pin",
            with(
                fuzz::OCI_REF,
                format!("oci://registry.example/a/b.c@sha256:{hex}").as_bytes(),
            ),
        ),
        (
            "layout-ref",
            with(fuzz::LAYOUT_REF, b"oci:/srv/www/policies/pay:ments:v1"),
        ),
        (
            "public-key",
            with(fuzz::PUBLIC_KEY, fixture("cosign.pub").as_bytes()),
        ),
        (
            "private-key-pkcs8",
            with(fuzz::PRIVATE_KEY, key.to_pem().as_bytes()),
        ),
        (
            "private-key-sec1",
            with(
                fuzz::PRIVATE_KEY,
                pem("EC PRIVATE KEY", &sec1_of(&pkcs8)).as_bytes(),
            ),
        ),
        (
            "private-key-encrypted",
            with(fuzz::PRIVATE_KEY, fixture("sigstore-hello.key").as_bytes()),
        ),
    ]
}

#[test]
fn seeds_are_fresh() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1");
    let dir = corpus_dir();
    let mut stale = Vec::new();
    for (name, content) in seeds() {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale seeds (regenerate with SLUICE_BLESS=1, see the top of this file): {stale:?}"
    );
}

#[test]
fn artifact_corpus() {
    assert!(sluice_testkit::replay_corpus("artifact", fuzz::artifact) > 0);
}

/// The seeds reach the deep paths: the artifact verifies whole, the one of
/// a newer format is refused as such, the payload's signature verifies,
/// both encodings of the private key read as the key of the public one.
#[test]
fn seeds_reach_the_deep_paths() {
    let seed = |name: &str| std::fs::read(corpus_dir().join(name)).unwrap();
    let manifest = seed("manifest");
    let verified = manifest_and_blobs(&manifest[1..]).expect("the seed artifact verifies");
    assert_eq!(verified.source, POLICY.as_bytes());
    let newer = seed("manifest-newer-format");
    assert!(matches!(
        manifest_and_blobs(&newer[1..]),
        Err(artifact::ArtifactError::FormatVersion { .. })
    ));

    let layers = signature::signature_layers(&seed("signature-manifest")[1..]).unwrap();
    assert_eq!(layers.len(), 1);

    let index = Index::parse(&seed("index")[1..]).unwrap();
    assert_eq!(index.manifests.len(), 3);

    let public = PublicKey::from_pem(&fixture("sigstore-hello.pub")).unwrap();
    for name in ["private-key-pkcs8", "private-key-sec1"] {
        let pem = String::from_utf8(seed(name)[1..].to_vec()).unwrap();
        assert_eq!(
            PrivateKey::from_pem(&pem).unwrap().public_key(),
            public,
            "{name}"
        );
    }
    assert!(PublicKey::from_pem(std::str::from_utf8(&seed("public-key")[1..]).unwrap()).is_ok());
}
