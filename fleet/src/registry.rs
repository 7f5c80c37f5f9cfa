//! Talking to an OCI registry: references of the form
//! `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX)`, pushing blobs and manifests
//! byte for byte, pulling them back with every digest checked here, and the
//! cosign signature tag `sha256-<hex>.sig`.
//!
//! A thin wrapper over `oci-client`: the distribution protocol is theirs,
//! the checks on what comes back are ours. The registry is never trusted
//! for content: a manifest's bytes must hash to the digest asked for (or, by
//! tag, to the digest the registry names), and a blob's bytes to the digest
//! its descriptor names.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::fmt;

/// The scheme prefix of Sluice's registry references.
pub const SCHEME: &str = "oci://";

/// The media type of an OCI image manifest, the only manifest type Sluice
/// pushes or accepts.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A parsed `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX)` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl OciRef {
    /// Parses a reference; it must start with `oci://`, name a host and a
    /// repository, and end with a tag or a `sha256` digest pin (not both).
    pub fn parse(text: &str) -> Result<Self, RefError> {
        let bad = |reason: &str| {
            RefError::Invalid(InvalidRef {
                text: text.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with `oci://`"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the host"))?;
        if registry.is_empty() || !registry.chars().all(is_host_char) {
            return Err(bad("the host is empty or holds a character a host cannot"));
        }
        let (name, tag, digest) = if let Some((name, pin)) = path.split_once('@') {
            let hex = pin
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("a digest pin must be `sha256:` and 64 hex digits"))?;
            if !is_sha256_hex(hex) {
                return Err(bad("a digest pin must be `sha256:` and 64 hex digits"));
            }
            (name, None, Some(pin.to_owned()))
        } else {
            match path.rsplit_once(':') {
                Some((name, tag)) => (name, Some(tag.to_owned()), None),
                None => return Err(bad("it has neither a `:TAG` nor an `@sha256:` pin")),
            }
        };
        if let Some(tag) = &tag {
            if !is_tag(tag) {
                return Err(bad("the tag is not 1 to 128 of `A-Za-z0-9_.-`, starting with a letter, digit or `_`"));
            }
        }
        if name.is_empty() || !name.split('/').all(is_path_component) {
            return Err(bad(
                "the repository must be lowercase `a-z0-9` parts separated by `/`, `.`, `_` or `-`",
            ));
        }
        Ok(OciRef {
            registry: registry.to_owned(),
            repository: name.to_owned(),
            tag,
            digest,
        })
    }

    /// The registry's host and port, e.g. `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository, e.g. `team/policy`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest pin (`sha256:HEX`), when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository, pinned to `digest` (`sha256:HEX`).
    pub fn at_digest(&self, digest: &str) -> OciRef {
        OciRef {
            tag: None,
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// The same repository, at `tag`.
    pub fn at_tag(&self, tag: &str) -> OciRef {
        OciRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The cosign signature tag of the manifest `digest` in this
    /// repository: `sha256-<hex>.sig`.
    pub fn signature_tag(&self, digest: &str) -> OciRef {
        self.at_tag(&format!("{}.sig", digest.replacen(':', "-", 1)))
    }

    fn to_reference(&self) -> Reference {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => {
                Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone())
            }
            (Some(t), None) => {
                Reference::with_tag(self.registry.clone(), self.repository.clone(), t.clone())
            }
            (None, None) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                "latest".to_owned(),
            ),
        }
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
}

fn is_path_component(part: &str) -> bool {
    let mut chars = part.chars();
    let starts = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ends = part
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    starts
        && ends
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn is_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `sha256:HEX` of `bytes`: an OCI digest.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A manifest as pulled: its exact bytes and their digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledManifest {
    /// The manifest's bytes, exactly as the registry served them.
    pub bytes: Vec<u8>,
    /// `sha256:HEX` of `bytes`, checked here.
    pub digest: String,
}

/// A client for one kind of transport: HTTPS, or plain HTTP when the caller
/// asks for it explicitly.
pub struct Registry {
    client: Client,
}

impl Registry {
    /// A client over HTTPS (the machine's roots), or plain HTTP when
    /// `plain_http` is set (the CLI's `--plain-http`). Installs rustls's
    /// `ring` provider as the process default unless one is installed.
    pub fn new(plain_http: bool) -> Registry {
        Registry::with_timeout(plain_http, None)
    }

    /// Like [`Registry::new`], with `timeout` for connecting and for each
    /// read.
    pub fn with_timeout(plain_http: bool, timeout: Option<std::time::Duration>) -> Registry {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            read_timeout: timeout,
            connect_timeout: timeout,
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        Registry {
            client: Client::new(config),
        }
    }

    /// Pushes `data` as a blob of `target`'s repository; its digest.
    pub async fn push_blob(&self, target: &OciRef, data: &[u8]) -> Result<String, RegistryError> {
        let digest = sha256_digest(data);
        let reference = target.to_reference();
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        if !self
            .client
            .blob_exists(&reference, &digest)
            .await
            .unwrap_or(false)
        {
            self.client
                .push_blob(&reference, data.to_vec(), &digest)
                .await
                .map_err(|e| transport(target, "push a blob to", e))?;
        }
        Ok(digest)
    }

    /// Pushes `bytes` exactly as given as an OCI image manifest under
    /// `target`'s tag; the manifest's digest (`sha256:HEX` of `bytes`).
    pub async fn push_manifest(
        &self,
        target: &OciRef,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        if target.tag.is_none() {
            return Err(RegistryError::NoTag(NoTag {
                reference: target.to_string(),
            }));
        }
        let reference = target.to_reference();
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        self.client
            .push_manifest_raw(
                &reference,
                bytes.to_vec(),
                http::HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .map_err(|e| transport(target, "push the manifest to", e))?;
        Ok(sha256_digest(bytes))
    }

    /// Pulls the OCI image manifest `source` names; its bytes must hash to
    /// the pinned digest, or (by tag) to the digest the registry names.
    pub async fn pull_manifest(&self, source: &OciRef) -> Result<PulledManifest, RegistryError> {
        match self.try_pull_manifest(source).await? {
            Some(m) => Ok(m),
            None => Err(RegistryError::NotFound(NotFound {
                reference: source.to_string(),
            })),
        }
    }

    /// Like [`Registry::pull_manifest`], but a manifest the registry does
    /// not have (`MANIFEST_UNKNOWN`, or 404) is `None`.
    pub async fn try_pull_manifest(
        &self,
        source: &OciRef,
    ) -> Result<Option<PulledManifest>, RegistryError> {
        let reference = source.to_reference();
        let pulled = self
            .client
            .pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &[OCI_MANIFEST])
            .await;
        let (bytes, served) = match pulled {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(transport(source, "pull the manifest from", e)),
        };
        let digest = sha256_digest(&bytes);
        let expected = source.digest.as_deref().unwrap_or(&served);
        if digest != expected {
            return Err(RegistryError::DigestMismatch(DigestMismatch {
                what: format!("the manifest of `{source}`"),
                expected: expected.to_owned(),
                actual: Some(digest),
            }));
        }
        Ok(Some(PulledManifest {
            bytes: bytes.to_vec(),
            digest,
        }))
    }

    /// Pulls the blob `digest` of `source`'s repository, refusing it when
    /// it is larger than `max_bytes` or its bytes do not hash to `digest`.
    pub async fn pull_blob(
        &self,
        source: &OciRef,
        digest: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let reference = source.to_reference();
        let mut out = Vec::new();
        let pulled = self
            .client
            .pull_blob(&reference, digest, &mut out)
            .await
            .map_err(|e| match e {
                OciDistributionError::DigestError(_) => {
                    RegistryError::DigestMismatch(DigestMismatch {
                        what: format!("a blob of `{source}`"),
                        expected: digest.to_owned(),
                        actual: None,
                    })
                }
                e => transport(source, "pull a blob from", e),
            });
        pulled?;
        if out.len() as u64 > max_bytes {
            return Err(RegistryError::TooLarge(TooLarge {
                what: format!("blob `{digest}` of `{source}`"),
                size: out.len() as u64,
                max: max_bytes,
            }));
        }
        let actual = sha256_digest(&out);
        if actual != digest {
            return Err(RegistryError::DigestMismatch(DigestMismatch {
                what: format!("a blob of `{source}`"),
                expected: digest.to_owned(),
                actual: Some(actual),
            }));
        }
        Ok(out)
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::ManifestUnknown)),
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

fn transport(reference: &OciRef, action: &str, e: OciDistributionError) -> RegistryError {
    RegistryError::Transport(Transport {
        action: format!("{action} `{reference}`"),
        message: e.to_string(),
    })
}

/// A reference that does not parse.
#[derive(Debug)]
pub enum RefError {
    /// Not of the form `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX)` (or, for
    /// an HTTP source, `https://HOST[:PORT]/PATH(:TAG|@sha256:HEX)`).
    Invalid(InvalidRef),
}

/// A reference that does not parse, and why.
#[derive(Debug)]
pub struct InvalidRef {
    /// The reference as written.
    pub text: String,
    /// Why it does not parse.
    pub reason: String,
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::Invalid(e) => write!(
                f,
                "`{}` is not a reference `oci://HOST[:PORT]/REPO` or `https://HOST[:PORT]/PATH` with `:TAG` or `@sha256:HEX`: {}",
                e.text, e.reason
            ),
        }
    }
}

impl RefError {
    /// `text` does not parse, for `reason`.
    pub(crate) fn invalid(text: &str, reason: &str) -> RefError {
        RefError::Invalid(InvalidRef {
            text: text.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

impl std::error::Error for RefError {}

/// What can go wrong talking to a registry.
#[derive(Debug)]
pub enum RegistryError {
    /// The request failed, or the registry answered with an error.
    Transport(Transport),
    /// The registry has no manifest under that reference.
    NotFound(NotFound),
    /// Bytes did not hash to the digest that names them.
    DigestMismatch(DigestMismatch),
    /// A blob is over the size limit.
    TooLarge(TooLarge),
    /// A manifest push needs a tag.
    NoTag(NoTag),
}

/// The request failed, or the registry answered with an error.
#[derive(Debug)]
pub struct Transport {
    /// What was being done, with the reference.
    pub action: String,
    /// The client's message.
    pub message: String,
}

/// The registry has no manifest under that reference.
#[derive(Debug)]
pub struct NotFound {
    /// The reference.
    pub reference: String,
}

/// Bytes did not hash to the digest that names them.
#[derive(Debug)]
pub struct DigestMismatch {
    /// What was pulled.
    pub what: String,
    /// The digest that names it.
    pub expected: String,
    /// The digest of what came, when known (the client checks a blob
    /// while it streams and does not say).
    pub actual: Option<String>,
}

/// A blob is over the size limit.
#[derive(Debug)]
pub struct TooLarge {
    /// What was pulled.
    pub what: String,
    /// Its size in bytes.
    pub size: u64,
    /// The limit in bytes.
    pub max: u64,
}

/// A manifest push needs a tag.
#[derive(Debug)]
pub struct NoTag {
    /// The reference without a tag.
    pub reference: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Transport(e) => write!(f, "cannot {}: {}", e.action, e.message),
            RegistryError::NotFound(e) => {
                write!(f, "the registry has no manifest `{}`", e.reference)
            }
            RegistryError::DigestMismatch(e) => {
                write!(f, "{} does not match its digest `{}`", e.what, e.expected)?;
                match &e.actual {
                    Some(actual) => write!(f, " (its bytes hash to `{actual}`)"),
                    None => Ok(()),
                }
            }
            RegistryError::TooLarge(e) => {
                write!(
                    f,
                    "{} has {} bytes, over the limit of {}",
                    e.what, e.size, e.max
                )
            }
            RegistryError::NoTag(e) => write!(f, "`{}` names no tag to push to", e.reference),
        }
    }
}

impl std::error::Error for RegistryError {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_and_pins() {
        let r = OciRef::parse("oci://127.0.0.1:5000/team/policy:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/policy");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/team/policy:v1");
        let pin = format!("oci://registry.example/p@sha256:{HEX}");
        let r = OciRef::parse(&pin).unwrap();
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), pin);
        assert_eq!(
            r.signature_tag(&format!("sha256:{HEX}")).tag(),
            Some(format!("sha256-{HEX}.sig").as_str())
        );
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "127.0.0.1:5000/p:v1",
            "https://h/p:v1",
            "oci://h",
            "oci:///p:v1",
            "oci://h/p",
            "oci://h/P:v1",
            "oci://h/p:",
            "oci://h/p:-v",
            "oci://h/p@sha256:abc",
            "oci://h/p@md5:0123",
            "oci://h//p:v1",
            "oci://h/p/:v1",
        ] {
            let e = OciRef::parse(bad).expect_err(bad);
            let message = e.to_string();
            assert!(message.contains(&format!("`{bad}`")), "{message}");
        }
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
