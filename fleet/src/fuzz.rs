//! The plain entry point of the `artifact` fuzz target in `fuzz/` and of the
//! corpus replay test (`tests/fuzz_corpus.rs`), behind the `fuzzing`
//! feature: every parser of bytes that a registry, an HTTP server or a user
//! hands to this crate, driven with arbitrary bytes. It must never panic, and
//! it asserts what must hold of what parses.

use std::sync::OnceLock;

use crate::artifact::{
    bundle_media_type, sha256_digest, CheckedManifest, Manifest, VerifiedArtifact,
    DEFAULT_MAX_BYTES, MAX_MANIFEST_BYTES, SOURCE_MEDIA_TYPE,
};
use crate::keys::{PrivateKey, PublicKey};
use crate::layout::{Index, IndexEntry, LayoutRef};
use crate::registry::OciRef;
use crate::signature::{self, IdentityPolicy, SignatureError, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::source::SourceRef;

/// Selector: an artifact manifest, a NUL byte, then its blobs
/// ([`manifest_and_blobs`]).
pub const MANIFEST: u8 = 0;
/// Selector: a signature manifest (`signature::signature_layers`).
pub const SIGNATURE_MANIFEST: u8 = 1;
/// Selector: a simple-signing payload, signed with a fixed key and verified
/// (`signature::verify_payload`) for [`PAYLOAD_DIGEST`] in [`PAYLOAD_REPOSITORY`].
pub const PAYLOAD: u8 = 2;
/// Selector: an image layout's `index.json` (`layout::Index::parse`).
pub const INDEX: u8 = 3;
/// Selector: a source reference (`source::SourceRef::parse`).
pub const SOURCE_REF: u8 = 4;
/// Selector: a registry reference (`registry::OciRef::parse`).
pub const OCI_REF: u8 = 5;
/// Selector: a layout reference (`layout::LayoutRef::parse`).
pub const LAYOUT_REF: u8 = 6;
/// Selector: a public key PEM (`keys::PublicKey::from_pem`).
pub const PUBLIC_KEY: u8 = 7;
/// Selector: a private key PEM (`keys::PrivateKey::from_pem`, and
/// `from_pem_with_password` without a password: no scrypt runs).
pub const PRIVATE_KEY: u8 = 8;
/// How many selectors there are; the first byte is taken modulo this.
pub const SELECTORS: u8 = 9;

/// The manifest digest a [`PAYLOAD`] input is verified against.
pub const PAYLOAD_DIGEST: &str =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The repository a [`PAYLOAD`] input must name.
pub const PAYLOAD_REPOSITORY: &str = "127.0.0.1:5000/team/policy";

/// Every parser of outside bytes in this crate: the first byte picks the
/// parser (modulo [`SELECTORS`]), the rest is its input.
pub fn artifact(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % SELECTORS {
        MANIFEST => manifest(input),
        SIGNATURE_MANIFEST => signature_manifest(input),
        PAYLOAD => payload(input),
        INDEX => index(input),
        SOURCE_REF => source_ref(&String::from_utf8_lossy(input)),
        OCI_REF => oci_ref(&String::from_utf8_lossy(input)),
        LAYOUT_REF => layout_ref(&String::from_utf8_lossy(input)),
        PUBLIC_KEY => public_key(&String::from_utf8_lossy(input)),
        _ => private_key(&String::from_utf8_lossy(input)),
    }
}

/// A [`MANIFEST`] input cut into the manifest (up to the first NUL byte,
/// which JSON text never holds) and, after it, the config, bundle and
/// source blobs, as long as their descriptors' sizes say (the source takes
/// the rest; a blob cut short is shorter than its size).
pub struct ManifestInput<'a> {
    /// The manifest's bytes.
    pub manifest: &'a [u8],
    /// The bytes after the NUL byte.
    pub blobs: &'a [u8],
}

impl<'a> ManifestInput<'a> {
    /// Splits `input` at its first NUL byte.
    pub fn split(input: &'a [u8]) -> ManifestInput<'a> {
        match input.iter().position(|&b| b == 0) {
            Some(nul) => ManifestInput {
                manifest: &input[..nul],
                blobs: &input[nul + 1..],
            },
            None => ManifestInput {
                manifest: input,
                blobs: &[],
            },
        }
    }

    /// The config, bundle and source blobs for `checked`.
    pub fn blobs(&self, checked: &CheckedManifest) -> (&'a [u8], &'a [u8], &'a [u8]) {
        let (config, rest) = take(self.blobs, checked.config().size);
        let (bundle, source) = take(rest, checked.bundle().size);
        (config, bundle, source)
    }
}

/// The first `n` bytes of `bytes` (all of them when shorter), and the rest.
fn take(bytes: &[u8], n: u64) -> (&[u8], &[u8]) {
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
    bytes.split_at(n)
}

/// Parses a [`MANIFEST`] input's manifest by its own digest and verifies
/// its blobs: what [`artifact`] checks first, for tests of the seeds.
pub fn manifest_and_blobs(
    input: &[u8],
) -> Result<VerifiedArtifact, crate::artifact::ArtifactError> {
    let split = ManifestInput::split(input);
    let checked = CheckedManifest::parse(
        split.manifest,
        &sha256_digest(split.manifest),
        DEFAULT_MAX_BYTES,
    )?;
    let (config, bundle, source) = split.blobs(&checked);
    checked.verify_blobs(Some(config), bundle, source)
}

fn manifest(input: &[u8]) {
    let split = ManifestInput::split(input);
    let digest = sha256_digest(split.manifest);
    let parsed = CheckedManifest::parse(split.manifest, &digest, DEFAULT_MAX_BYTES);
    // Another digest is refused, whatever the bytes.
    let other = sha256_digest(input);
    if other != digest {
        assert!(CheckedManifest::parse(split.manifest, &other, DEFAULT_MAX_BYTES).is_err());
    }
    let Ok(checked) = parsed else {
        return;
    };
    assert_eq!(checked.digest(), digest);
    assert!(split.manifest.len() <= MAX_MANIFEST_BYTES);
    assert_eq!(checked.manifest().layers.len(), 2);
    assert_eq!(checked.source().media_type, SOURCE_MEDIA_TYPE);
    assert_eq!(
        checked.bundle().media_type,
        bundle_media_type(checked.format_version())
    );
    let total = [checked.config(), checked.bundle(), checked.source()]
        .iter()
        .fold(split.manifest.len() as u64, |t, d| t.saturating_add(d.size));
    assert!(total <= DEFAULT_MAX_BYTES);
    // The manifest as data survives its own serialization, and the bytes it
    // serializes to are accepted alike.
    let bytes = checked.manifest().to_bytes();
    let back: Manifest = serde_json::from_slice(&bytes).expect("a written manifest reads back");
    assert_eq!(&back, checked.manifest());
    if bytes.len() <= split.manifest.len() {
        let again = CheckedManifest::parse(&bytes, &sha256_digest(&bytes), DEFAULT_MAX_BYTES)
            .expect("a checked manifest, rewritten, checks");
        assert_eq!(again.manifest(), checked.manifest());
        assert_eq!(again.format_version(), checked.format_version());
        assert_eq!(again.bundle_hash(), checked.bundle_hash());
    }

    let (config, bundle, source) = split.blobs(&checked);
    match checked.clone().verify_source(source) {
        Ok(verified) => {
            assert_eq!(verified.digest, digest);
            assert_eq!(verified.format_version, checked.format_version());
            assert_eq!(sha256_digest(&verified.source), checked.source().digest);
        }
        Err(_) => assert!(
            source.len() as u64 != checked.source().size
                || sha256_digest(source) != checked.source().digest
        ),
    }
    let readable = checked.is_readable();
    let (bundle_digest, source_digest, bundle_hash) = (
        checked.bundle().digest.clone(),
        checked.source().digest.clone(),
        checked.bundle_hash().to_owned(),
    );
    if let Ok(verified) = checked.verify_blobs(Some(config), bundle, source) {
        assert!(readable);
        assert_eq!(verified.digest, digest);
        assert_eq!(verified.bundle_hash, bundle_hash);
        assert_eq!(sha256_digest(verified.bundle.as_bytes()), bundle_digest);
        assert_eq!(sha256_digest(&verified.source), source_digest);
        assert_eq!(verified.source, source);
    }
}

fn signature_manifest(input: &[u8]) {
    let Ok(layers) = signature::signature_layers(input) else {
        return;
    };
    assert!(layers
        .iter()
        .all(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE));
    // The manifest written for these layers holds them, in order.
    let written = signature::signature_manifest(&layers);
    assert_eq!(
        signature::signature_layers(&written.manifest_bytes).expect("a written manifest reads"),
        layers
    );
}

/// The fixed signing key of [`PAYLOAD`] inputs, made once.
fn fixed_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().expect("the system random generator works"))
}

fn payload(input: &[u8]) {
    let key = fixed_key();
    let public = key.public_key();
    let signature = key.sign(input).expect("the system random generator works");
    let repository = IdentityPolicy::Repository(PAYLOAD_REPOSITORY.to_owned());
    let strict = signature::verify_payload(
        input,
        &signature,
        std::slice::from_ref(&public),
        PAYLOAD_DIGEST,
        &repository,
    );
    let any = signature::verify_payload(
        input,
        &signature,
        std::slice::from_ref(&public),
        PAYLOAD_DIGEST,
        &IdentityPolicy::Any,
    );
    if let Ok(v) = &strict {
        assert_eq!(v.key_id, public.key_id());
        assert_eq!(
            signature::repository_of(&v.docker_reference),
            PAYLOAD_REPOSITORY
        );
        assert_eq!(any.as_ref(), Ok(v));
    }
    if let Ok(v) = &any {
        assert_eq!(v.key_id, public.key_id());
        assert!(matches!(
            strict,
            Ok(_) | Err(SignatureError::WrongIdentity { .. })
        ));
    }
    // The input taken as the signature is no signature of the fixed key.
    assert!(matches!(
        signature::verify_payload(
            input,
            input,
            std::slice::from_ref(&public),
            PAYLOAD_DIGEST,
            &IdentityPolicy::Any,
        ),
        Err(SignatureError::BadSignature { .. })
    ));
}

fn index(input: &[u8]) {
    let Ok(mut index) = Index::parse(input) else {
        return;
    };
    assert_eq!(index.schema_version, 2);
    assert_eq!(
        Index::parse(&index.to_bytes()).as_ref(),
        Ok(&index),
        "what is written parses back equal"
    );
    let tag = "fuzz-tag";
    let entry = IndexEntry::of_manifest(input);
    index.set(tag, entry.clone());
    let found = index.find(tag).expect("a tag just set is found");
    assert_eq!(found.digest, entry.digest);
    assert_eq!(found.tag(), Some(tag));
    assert_eq!(
        index
            .manifests
            .iter()
            .filter(|e| e.tag() == Some(tag))
            .count(),
        1
    );
    assert_eq!(Index::parse(&index.to_bytes()).as_ref(), Ok(&index));
}

fn source_ref(text: &str) {
    let Ok(parsed) = SourceRef::parse(text) else {
        return;
    };
    if let Some(digest) = parsed.digest() {
        assert!(crate::registry::is_sha256_digest(digest), "{digest}");
    }
    if let SourceRef::Http(http) = &parsed {
        assert!(http.base().ends_with('/'));
        assert!(http.index_url().starts_with(http.base()));
        assert_ne!(http.tag().is_some(), http.digest().is_some());
    }
    let shown = parsed.to_string();
    assert_eq!(
        SourceRef::parse(&shown).ok(),
        Some(parsed.clone()),
        "`{text}` is shown as `{shown}`"
    );
}

fn oci_ref(text: &str) {
    let Ok(parsed) = OciRef::parse(text) else {
        return;
    };
    assert_ne!(parsed.tag().is_some(), parsed.digest().is_some());
    let shown = parsed.to_string();
    assert_eq!(
        OciRef::parse(&shown).ok(),
        Some(parsed.clone()),
        "`{text}` is shown as `{shown}`"
    );
    if let Some(digest) = parsed.digest() {
        assert!(crate::registry::is_sha256_digest(digest), "{digest}");
        let tag = parsed.signature_tag(digest);
        assert_eq!(
            OciRef::parse(&tag.to_string()).ok(),
            Some(tag.clone()),
            "a signature tag is a reference"
        );
    }
}

fn layout_ref(text: &str) {
    let Ok(parsed) = LayoutRef::parse(text) else {
        return;
    };
    assert!(LayoutRef::is_layout(text));
    let shown = parsed.to_string();
    assert_eq!(
        LayoutRef::parse(&shown).as_ref(),
        Ok(&parsed),
        "`{text}` is shown as `{shown}`"
    );
}

fn public_key(pem: &str) {
    let Ok(key) = PublicKey::from_pem(pem) else {
        return;
    };
    assert_eq!(PublicKey::from_pem(&key.to_pem()).as_ref(), Ok(&key));
    assert_eq!(PublicKey::from_spki_der(&key.spki_der()).as_ref(), Ok(&key));
    assert_eq!(key.key_id().len(), 16);
}

fn private_key(pem: &str) {
    let plain = PrivateKey::from_pem(pem);
    let without_password = PrivateKey::from_pem_with_password(pem, None);
    assert_eq!(
        plain
            .as_ref()
            .map(PrivateKey::public_key)
            .map_err(Clone::clone),
        without_password
            .as_ref()
            .map(PrivateKey::public_key)
            .map_err(Clone::clone)
    );
    let Ok(key) = plain else {
        return;
    };
    let public = key.public_key();
    let back = PrivateKey::from_pem(&key.to_pem()).expect("a written key reads back");
    assert_eq!(back.public_key(), public);
    let signature = key
        .sign(pem.as_bytes())
        .expect("the system random generator works");
    assert!(public.verify(pem.as_bytes(), &signature));
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\ne30=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";

    fn with(selector: u8, input: &[u8]) -> Vec<u8> {
        [&[selector][..], input].concat()
    }

    #[test]
    fn every_selector_takes_good_and_bad_input() {
        let key = PrivateKey::generate().unwrap();
        let hex = &PAYLOAD_DIGEST["sha256:".len()..];
        let inputs: [(u8, Vec<u8>); 12] = [
            (SOURCE_REF, b"oci://127.0.0.1:5000/team/policy:v1".to_vec()),
            (
                SOURCE_REF,
                format!("https://cdn.example/p@sha256:{hex}").into_bytes(),
            ),
            (
                OCI_REF,
                format!("oci://r:5000/a/b@sha256:{hex}").into_bytes(),
            ),
            (LAYOUT_REF, b"oci:relative/a:b:v2".to_vec()),
            (PUBLIC_KEY, key.public_key().to_pem().into_bytes()),
            (PRIVATE_KEY, key.to_pem().into_bytes()),
            (PRIVATE_KEY, ENCRYPTED.as_bytes().to_vec()),
            (
                PAYLOAD,
                signature::payload("127.0.0.1:5000/team/policy:v1", PAYLOAD_DIGEST),
            ),
            (INDEX, Index::new().to_bytes()),
            (
                SIGNATURE_MANIFEST,
                signature::signature_manifest(&[]).manifest_bytes,
            ),
            (MANIFEST, b"{}\0".to_vec()),
            (SELECTORS + MANIFEST, b"not json".to_vec()),
        ];
        for (selector, input) in inputs {
            artifact(&with(selector, &input));
            artifact(&with(selector, &input[..input.len() / 2]));
        }
        artifact(&[]);
        // A cosign key without a password is refused before any scrypt.
        assert_eq!(
            PrivateKey::from_pem_with_password(ENCRYPTED, None).unwrap_err(),
            crate::keys::KeyError::PasswordRequired
        );
    }

    #[test]
    fn a_manifest_input_is_cut_by_its_descriptors_sizes() {
        let split = ManifestInput::split(b"{\"a\":1}\0{}bundle-source");
        assert_eq!(split.manifest, b"{\"a\":1}");
        assert_eq!(split.blobs, b"{}bundle-source");
        assert_eq!(take(b"abc", 2), (&b"ab"[..], &b"c"[..]));
        assert_eq!(take(b"abc", u64::MAX), (&b"abc"[..], &b""[..]));
        let whole = ManifestInput::split(b"no nul");
        assert_eq!((whole.manifest, whole.blobs), (&b"no nul"[..], &b""[..]));
    }
}
