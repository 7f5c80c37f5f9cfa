//! Signatures in cosign's key-based format: a simple-signing payload naming
//! the artifact's manifest digest and reference, signed with ECDSA P-256 and
//! SHA-256 (DER, base64 in a layer annotation), stored as a layer of the
//! OCI manifest under the tag `sha256-<hex>.sig` beside the artifact (the
//! layout containers/image and cosign use). No I/O here.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::artifact::{sha256_digest, Blob, Descriptor, Manifest, MANIFEST_MEDIA_TYPE};
use crate::keys::{KeyError, PrivateKey, PublicKey};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Media type of the signature manifest's config (an image config, as
/// containers/image writes it).
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Largest payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 16 << 10;

/// The tag holding the signatures of the manifest with `digest`:
/// `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Result<String, SignatureError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(format!("sha256-{hex}.sig"))
        }
        _ => Err(SignatureError::BadDigest {
            digest: digest.to_string(),
        }),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    critical: Critical,
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The simple-signing payload for the manifest `digest` pushed as
/// `docker_reference` (e.g. `registry:5000/team/policy:v1`), with
/// `optional` null: the bytes that get signed.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let p = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_string(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: PAYLOAD_TYPE.to_string(),
        },
        optional: None,
    };
    serde_json::to_vec(&p).unwrap_or_default()
}

/// Signs the manifest `digest` pushed as `docker_reference` with `key`:
/// the payload blob, whose descriptor carries the signature annotation.
pub fn sign(key: &PrivateKey, docker_reference: &str, digest: &str) -> Result<Blob, KeyError> {
    let bytes = payload(docker_reference, digest);
    let signature = key.sign(&bytes)?;
    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &bytes);
    descriptor.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_string(),
        base64::engine::general_purpose::STANDARD.encode(signature),
    )]));
    Ok(Blob { descriptor, bytes })
}

/// A signature manifest ready to push under [`signature_tag`]: its config
/// blob, then the manifest bytes (the payload blobs are pushed too).
#[derive(Clone, Debug)]
pub struct SignatureManifest {
    /// The manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// The image config blob (the payloads' digests as `diff_ids`).
    pub config: Blob,
}

/// The signature manifest holding `layers` (payload descriptors with their
/// signature annotations), in order. To add a signature, pass the layers
/// of the existing manifest ([`signature_layers`]) followed by the new one:
/// signatures are appended, not replaced. The bytes match what
/// containers/image writes for the same layers.
pub fn signature_manifest(layers: &[Descriptor]) -> SignatureManifest {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config_json = serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    // Written by hand to keep containers/image's key order (serde_json's
    // map sorts keys).
    let config_bytes = format!(
        r#"{{"architecture":"","os":"","config":{{}},"rootfs":{{"type":"layers","diff_ids":{}}}}}"#,
        config_json["rootfs"]["diff_ids"]
    )
    .into_bytes();
    let config = Blob {
        descriptor: Descriptor::of(IMAGE_CONFIG_MEDIA_TYPE, &config_bytes),
        bytes: config_bytes,
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: None,
        config: config.descriptor.clone(),
        layers: layers.to_vec(),
        annotations: None,
    };
    SignatureManifest {
        manifest_bytes: manifest.to_bytes(),
        config,
    }
}

/// The simple-signing layers of signature manifest `bytes` (others are
/// skipped), whose payload blobs are then fetched for [`verify`].
pub fn signature_layers(bytes: &[u8]) -> Result<Vec<Descriptor>, SignatureError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| SignatureError::Malformed {
            what: "signature manifest",
            reason: e.to_string(),
        })?;
    Ok(manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .collect())
}

/// Which `docker-reference` a payload may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityPolicy {
    /// The reference, without its tag or digest, must be this repository
    /// (`registry[:port]/path`), compared exactly (cosign writes the
    /// repository, containers/image adds the tag: both match).
    Repository(String),
    /// Any reference: only the digest and the key are checked (for a
    /// signature checked by digest where the repository was mirrored).
    Any,
}

/// The repository part of a docker reference: without `@digest` and
/// without `:tag` (a `:` after the last `/`).
pub fn repository_of(reference: &str) -> &str {
    let r = reference.split('@').next().unwrap_or(reference);
    match (r.rfind(':'), r.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &r[..colon],
        (Some(colon), None) => &r[..colon],
        _ => r,
    }
}

/// A signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The id ([`PublicKey::key_id`]) of the key it verified with.
    pub key_id: String,
    /// The payload's `docker-reference`.
    pub docker_reference: String,
}

/// Verifies one signature: `signature` (DER) is one of `keys`' signature
/// of `payload`, whose `docker-manifest-digest` is `digest` and whose
/// identity fits `identity`. The signature is checked before the payload
/// is parsed.
pub fn verify_payload(
    payload: &[u8],
    signature: &[u8],
    keys: &[PublicKey],
    digest: &str,
    identity: &IdentityPolicy,
) -> Result<Verified, SignatureError> {
    if keys.is_empty() {
        return Err(SignatureError::NoKeys);
    }
    let key = keys
        .iter()
        .find(|k| k.verify(payload, signature))
        .ok_or_else(|| SignatureError::BadSignature {
            keys: keys.iter().map(PublicKey::key_id).collect(),
        })?;
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|e| SignatureError::Malformed {
            what: "payload",
            reason: e.to_string(),
        })?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(SignatureError::Malformed {
            what: "payload",
            reason: format!("its type is `{}`", parsed.critical.kind),
        });
    }
    let signed = parsed.critical.image.docker_manifest_digest;
    if signed != digest {
        return Err(SignatureError::WrongDigest {
            signed,
            expected: digest.to_string(),
        });
    }
    let reference = parsed.critical.identity.docker_reference;
    if let IdentityPolicy::Repository(repository) = identity {
        if repository_of(&reference) != repository {
            return Err(SignatureError::WrongIdentity {
                signed: reference,
                expected: repository.clone(),
            });
        }
    }
    Ok(Verified {
        key_id: key.key_id(),
        docker_reference: reference,
    })
}

/// Verifies fetched signature layers: each `(descriptor, payload bytes)`
/// must have its descriptor's size and digest and a base64 signature
/// annotation; the first that [`verify_payload`]s is accepted. With none,
/// the error of each layer is given (or [`SignatureError::Unsigned`]).
pub fn verify(
    layers: &[(Descriptor, Vec<u8>)],
    keys: &[PublicKey],
    digest: &str,
    identity: &IdentityPolicy,
) -> Result<Verified, SignatureError> {
    if layers.is_empty() {
        return Err(SignatureError::Unsigned);
    }
    let mut errors = Vec::new();
    for (descriptor, payload) in layers {
        match verify_layer(descriptor, payload, keys, digest, identity) {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() == 1 {
        return Err(errors.remove(0));
    }
    Err(SignatureError::NoneVerified { errors })
}

fn verify_layer(
    d: &Descriptor,
    payload: &[u8],
    keys: &[PublicKey],
    digest: &str,
    identity: &IdentityPolicy,
) -> Result<Verified, SignatureError> {
    if d.size > MAX_PAYLOAD_BYTES
        || payload.len() as u64 != d.size
        || sha256_digest(payload) != d.digest
    {
        return Err(SignatureError::Malformed {
            what: "payload",
            reason: format!("its bytes are not those of descriptor `{}`", d.digest),
        });
    }
    let annotation = d
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        .ok_or(SignatureError::Malformed {
            what: "signature layer",
            reason: format!("it lacks the `{SIGNATURE_ANNOTATION}` annotation"),
        })?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(annotation)
        .map_err(|e| SignatureError::Malformed {
            what: "signature annotation",
            reason: e.to_string(),
        })?;
    verify_payload(payload, &signature, keys, digest, identity)
}

/// Why a signature was refused or cannot be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not a `sha256:<64 hex>` digest.
    BadDigest {
        /// The digest given.
        digest: String,
    },
    /// No signature layer at all.
    Unsigned,
    /// No keys are configured to verify with.
    NoKeys,
    /// The signature is not made by any of the keys (or the payload was
    /// changed after signing).
    BadSignature {
        /// The ids of the keys tried.
        keys: Vec<String>,
    },
    /// The payload signs another manifest digest.
    WrongDigest {
        /// The digest in the payload.
        signed: String,
        /// The artifact's digest.
        expected: String,
    },
    /// The payload names another repository.
    WrongIdentity {
        /// The payload's docker-reference.
        signed: String,
        /// The repository required.
        expected: String,
    },
    /// A manifest, payload or annotation is not of the expected shape.
    Malformed {
        /// Which.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Several signature layers, none verified: each one's error.
    NoneVerified {
        /// One error per layer, in order.
        errors: Vec<SignatureError>,
    },
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::BadDigest { digest } => {
                write!(f, "`{digest}` is not a sha256 digest")
            }
            SignatureError::Unsigned => f.write_str("the artifact has no signature"),
            SignatureError::NoKeys => f.write_str("no public keys to verify signatures with"),
            SignatureError::BadSignature { keys } => write!(
                f,
                "the signature does not verify with any trusted key (tried `{}`)",
                keys.join("`, `")
            ),
            SignatureError::WrongDigest { signed, expected } => write!(
                f,
                "the signature is for manifest `{signed}`, not `{expected}`"
            ),
            SignatureError::WrongIdentity { signed, expected } => write!(
                f,
                "the signature names `{signed}`, not repository `{expected}`"
            ),
            SignatureError::Malformed { what, reason } => {
                write!(f, "malformed {what}: {reason}")
            }
            SignatureError::NoneVerified { errors } => {
                f.write_str("no signature verified:")?;
                for (i, e) in errors.iter().enumerate() {
                    write!(f, " [{}] {e};", i + 1)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SignatureError {}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    fn upstream_key() -> PublicKey {
        PublicKey::from_pem(include_str!("../tests/fixtures/cosign/cosign.pub")).unwrap()
    }

    #[test]
    fn a_signature_made_by_upstream_cosign_verifies() {
        let signed = include_bytes!("../tests/fixtures/cosign/payload.json");
        let signature = include_bytes!("../tests/fixtures/cosign/signature.der");
        let v = verify_payload(
            signed,
            signature,
            &[upstream_key()],
            DIGEST,
            &IdentityPolicy::Repository("192.168.64.2:5000/cosign-signed-single-sample".into()),
        )
        .unwrap();
        assert_eq!(v.key_id, upstream_key().key_id());
        // Our payload for the same reference and digest is byte-identical.
        assert_eq!(
            payload("192.168.64.2:5000/cosign-signed-single-sample", DIGEST),
            signed.to_vec()
        );
        let other = "sha256:".to_string() + &"0".repeat(64);
        assert_eq!(
            verify_payload(
                signed,
                signature,
                &[upstream_key()],
                &other,
                &IdentityPolicy::Any
            ),
            Err(SignatureError::WrongDigest {
                signed: DIGEST.into(),
                expected: other.clone()
            })
        );
    }

    #[test]
    fn signature_manifest_matches_containers_image_bytes() {
        // Made by openssl and curl in cosign's layout; skopeo copied it
        // byte-identically (see docs/distribution.md).
        let expected = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:71b512f880a39dac158d62e59faecf629c8a436f510c783f19106811fcd4a8f7","size":153},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:529c09e5bf85feb6cb081be2d7e08c30fe39b910cef8ae1ed041ddd6bb45c76b","size":268,"annotations":{"dev.cosignproject.cosign/signature":"MEYCIQCwQ1mra93nLHyqDpXZmouBJNrk05LJ/J8+IfQ47zObIwIhAMGtuvn0GvZVscVn/f6oDJbCsGHcQE0c6SAuFMNKQLGw"}}]}"#;
        let layers = signature_layers(expected.as_bytes()).unwrap();
        assert_eq!(layers.len(), 1);
        let built = signature_manifest(&layers);
        assert_eq!(String::from_utf8(built.manifest_bytes).unwrap(), expected);
        assert_eq!(
            built.config.descriptor.digest,
            "sha256:71b512f880a39dac158d62e59faecf629c8a436f510c783f19106811fcd4a8f7"
        );
    }

    #[test]
    fn signed_layers_verify_and_refusals_name_the_reason() {
        let key = PrivateKey::generate().unwrap();
        let other = PrivateKey::generate().unwrap();
        let digest = crate::artifact::sha256_digest(b"manifest");
        let blob = sign(&key, "127.0.0.1:5000/team/policy:v1", &digest).unwrap();
        let repo = IdentityPolicy::Repository("127.0.0.1:5000/team/policy".into());
        let layer = (blob.descriptor.clone(), blob.bytes.clone());
        let v = verify(
            std::slice::from_ref(&layer),
            &[other.public_key(), key.public_key()],
            &digest,
            &repo,
        )
        .unwrap();
        assert_eq!(v.key_id, key.public_key().key_id());
        assert!(matches!(
            verify(
                std::slice::from_ref(&layer),
                &[other.public_key()],
                &digest,
                &repo
            ),
            Err(SignatureError::BadSignature { .. })
        ));
        assert!(matches!(
            verify(
                std::slice::from_ref(&layer),
                &[key.public_key()],
                &digest,
                &IdentityPolicy::Repository("127.0.0.1:5000/team/other".into())
            ),
            Err(SignatureError::WrongIdentity { .. })
        ));
        assert_eq!(
            verify(&[], &[key.public_key()], &digest, &repo),
            Err(SignatureError::Unsigned)
        );
        assert_eq!(
            verify(std::slice::from_ref(&layer), &[], &digest, &repo),
            Err(SignatureError::NoKeys)
        );
        let mut tampered = layer.clone();
        tampered.1[20] ^= 1;
        // A bad layer before a good one does not hide it.
        assert!(verify(
            &[tampered.clone(), layer.clone()],
            &[key.public_key()],
            &digest,
            &repo
        )
        .is_ok());
        assert!(matches!(
            verify(&[tampered.clone(), tampered], &[key.public_key()], &digest, &repo),
            Err(SignatureError::NoneVerified { errors }) if errors.len() == 2
        ));
        // Appending keeps the earlier signature and lists both digests.
        let second = sign(&other, "127.0.0.1:5000/team/policy", &digest).unwrap();
        let m = signature_manifest(&[blob.descriptor.clone(), second.descriptor.clone()]);
        assert_eq!(signature_layers(&m.manifest_bytes).unwrap().len(), 2);
        assert!(String::from_utf8(m.config.bytes)
            .unwrap()
            .contains(&second.descriptor.digest));
    }

    #[test]
    fn tags_and_repositories() {
        let digest = crate::artifact::sha256_digest(b"x");
        assert_eq!(
            signature_tag(&digest).unwrap(),
            format!("sha256-{}.sig", &digest[7..])
        );
        assert!(matches!(
            signature_tag("sha256:ABC"),
            Err(SignatureError::BadDigest { .. })
        ));
        assert_eq!(repository_of("r:5000/a/b:v1"), "r:5000/a/b");
        assert_eq!(repository_of("r:5000/a/b"), "r:5000/a/b");
        assert_eq!(repository_of("r/a/b@sha256:00"), "r/a/b");
        assert_eq!(repository_of("a:v1"), "a");
    }
}
