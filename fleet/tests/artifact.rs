//! The Sluice artifact built from a real compiled bundle, verified back, and
//! refused when any byte, size, media type or the format version is off.

use sluice_fleet::artifact::{
    build, bundle_media_type, sha256_digest, Artifact, ArtifactError, CheckedManifest,
    DEFAULT_MAX_BYTES, EMPTY_BLOB, EMPTY_DIGEST, FORMAT_VERSION_ANNOTATION,
};
use sluice_runtime::bundle::FORMAT_VERSION;
use sluice_runtime::{AlignedBytes, Bundle};

const POLICY: &str = r#"
mesh { trust-domain "td" }
server web { port 80  route api { method GET  path prefix "/api" } }
allow a { to web.api  from authenticated }
"#;

fn bundle() -> Vec<u8> {
    let (policy, diags) = sluice_lang::parse::parse_str("p.sluice", POLICY);
    assert!(diags.is_empty(), "{diags:?}");
    sluice_compiler::compile(&policy, &sluice_compiler::Config::default())
        .expect("compiles")
        .bundle
}

fn artifact() -> Artifact {
    build(&bundle(), POLICY.as_bytes(), Some("2026-12-07T00:00:00Z")).unwrap()
}

fn verify(a: &Artifact) -> Result<sluice_fleet::artifact::VerifiedArtifact, ArtifactError> {
    CheckedManifest::parse(&a.manifest_bytes, &a.digest, DEFAULT_MAX_BYTES)?.verify_blobs(
        Some(&a.config.bytes),
        &a.bundle.bytes,
        &a.source.bytes,
    )
}

/// The artifact with its manifest changed by `f` and re-serialized (so its
/// digest is the new bytes' one: what a registry would hand back for it).
fn edited(f: impl FnOnce(&mut sluice_fleet::artifact::Manifest)) -> Artifact {
    let mut a = artifact();
    f(&mut a.manifest);
    a.manifest_bytes = a.manifest.to_bytes();
    a.digest = sha256_digest(&a.manifest_bytes);
    a
}

#[test]
fn built_artifact_verifies_and_has_the_documented_shape() {
    let a = artifact();
    assert_eq!(a.digest, sha256_digest(&a.manifest_bytes));
    assert_eq!(sha256_digest(EMPTY_BLOB), EMPTY_DIGEST);
    let json: serde_json::Value = serde_json::from_slice(&a.manifest_bytes).unwrap();
    assert_eq!(json["schemaVersion"], 2);
    assert_eq!(
        json["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(json["artifactType"], "application/vnd.sluice.policy.v1");
    assert_eq!(
        json["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(json["config"]["digest"], EMPTY_DIGEST);
    assert_eq!(json["config"]["size"], 2);
    assert_eq!(
        json["layers"][0]["mediaType"],
        "application/vnd.sluice.bundle.v3"
    );
    assert_eq!(
        bundle_media_type(FORMAT_VERSION),
        "application/vnd.sluice.bundle.v3"
    );
    assert_eq!(
        json["layers"][1]["mediaType"],
        "application/vnd.sluice.policy.source.v1"
    );
    let aligned = AlignedBytes::new(&bundle());
    let hash = format!(
        "{:016x}",
        Bundle::from_bytes(aligned.as_bytes()).unwrap().hash()
    );
    assert_eq!(json["annotations"]["io.sluice.bundle-hash"], hash.as_str());
    assert_eq!(json["annotations"]["io.sluice.format-version"], "3");
    assert_eq!(
        json["annotations"]["io.sluice.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        json["annotations"]["org.opencontainers.image.created"],
        "2026-12-07T00:00:00Z"
    );
    // Field order is fixed: the same inputs give the same bytes and digest.
    assert!(std::str::from_utf8(&a.manifest_bytes)
        .unwrap()
        .starts_with(r#"{"schemaVersion":2,"mediaType":"#));
    assert_eq!(artifact().digest, a.digest);

    let v = verify(&a).unwrap();
    assert_eq!(v.digest, a.digest);
    assert_eq!(v.bundle_hash, hash);
    assert_eq!(v.bundle.as_bytes(), &bundle()[..]);
    assert_eq!(v.source, POLICY.as_bytes());
    assert!(Bundle::from_bytes(v.bundle.as_bytes()).is_ok());
}

#[test]
fn a_bundle_that_does_not_load_is_not_built() {
    assert!(matches!(
        build(b"not a bundle", b"", None),
        Err(ArtifactError::BundleLoad { .. })
    ));
}

#[test]
fn manifest_not_matching_the_registry_digest_is_refused() {
    let a = artifact();
    let other = sha256_digest(b"other");
    assert_eq!(
        CheckedManifest::parse(&a.manifest_bytes, &other, DEFAULT_MAX_BYTES).unwrap_err(),
        ArtifactError::DigestMismatch {
            what: "manifest".into(),
            expected: other,
            actual: a.digest.clone()
        }
    );
}

#[test]
fn tampered_blobs_are_refused() {
    let a = artifact();
    let checked =
        || CheckedManifest::parse(&a.manifest_bytes, &a.digest, DEFAULT_MAX_BYTES).unwrap();
    let mut bundle = a.bundle.bytes.clone();
    let last = bundle.len() - 1;
    bundle[last] ^= 1;
    let e = checked()
        .verify_blobs(None, &bundle, &a.source.bytes)
        .unwrap_err();
    assert!(
        matches!(&e, ArtifactError::DigestMismatch { what, .. } if what == "bundle layer"),
        "{e}"
    );
    let mut source = a.source.bytes.clone();
    source.push(b'\n');
    let e = checked()
        .verify_blobs(None, &a.bundle.bytes, &source)
        .unwrap_err();
    assert!(
        matches!(&e, ArtifactError::SizeMismatch { what, .. } if what == "source layer"),
        "{e}"
    );
    let e = checked()
        .verify_blobs(Some(b"{ }"), &a.bundle.bytes, &a.source.bytes)
        .unwrap_err();
    assert!(
        matches!(&e, ArtifactError::SizeMismatch { what, .. } if what == "config"),
        "{e}"
    );
}

#[test]
fn a_descriptor_size_that_lies_is_refused() {
    let a = edited(|m| m.layers[0].size += 1);
    assert!(matches!(
        verify(&a),
        Err(ArtifactError::SizeMismatch { expected, actual, .. }) if expected == actual + 1
    ));
}

#[test]
fn a_bundle_whose_hash_is_not_the_annotated_one_is_refused() {
    let a = edited(|m| {
        m.annotations
            .as_mut()
            .unwrap()
            .insert("io.sluice.bundle-hash".into(), "0000000000000000".into());
    });
    assert!(matches!(verify(&a), Err(ArtifactError::BundleHash { .. })));
}

#[test]
fn wrong_media_types_are_refused() {
    let cases: [(&str, Artifact); 4] = [
        (
            "artifactType",
            edited(|m| m.artifact_type = Some("application/vnd.example".into())),
        ),
        (
            "config",
            edited(|m| m.config.media_type = "application/vnd.oci.image.config.v1+json".into()),
        ),
        ("layers[0]", edited(|m| m.layers.swap(0, 1))),
        ("mediaType", edited(|m| m.media_type = None)),
    ];
    for (field, a) in cases {
        let e = verify(&a).unwrap_err();
        assert!(
            matches!(&e, ArtifactError::MediaType { field: f, .. } if *f == field),
            "{field}: {e}"
        );
    }
}

#[test]
fn another_format_version_is_refused_naming_both_versions() {
    let next = FORMAT_VERSION + 1;
    let a = edited(|m| {
        m.annotations
            .as_mut()
            .unwrap()
            .insert(FORMAT_VERSION_ANNOTATION.into(), next.to_string());
        m.layers[0].media_type = bundle_media_type(next);
    });
    let e = verify(&a).unwrap_err();
    assert_eq!(
        e,
        ArtifactError::FormatVersion {
            found: next.to_string(),
            supported: FORMAT_VERSION
        }
    );
    assert_eq!(
        e.to_string(),
        format!("the artifact holds bundle format version `{next}`, this sluice reads version {FORMAT_VERSION}")
    );
}

#[test]
fn an_artifact_over_the_size_limit_is_refused_before_download() {
    let a = artifact();
    let e = CheckedManifest::parse(&a.manifest_bytes, &a.digest, 100).unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::TooLarge {
                what: "artifact",
                max: 100,
                ..
            }
        ),
        "{e}"
    );
    let big = edited(|m| m.layers[0].size = u64::MAX);
    assert!(matches!(
        CheckedManifest::parse(&big.manifest_bytes, &big.digest, DEFAULT_MAX_BYTES),
        Err(ArtifactError::TooLarge { .. })
    ));
}

#[test]
fn junk_manifests_are_refused() {
    for junk in [&b"{}"[..], b"[1,2]", b"\xff", b"{\"schemaVersion\":3}"] {
        let e = CheckedManifest::parse(junk, &sha256_digest(junk), DEFAULT_MAX_BYTES).unwrap_err();
        assert!(matches!(e, ArtifactError::Malformed { .. }), "{e}");
    }
}
