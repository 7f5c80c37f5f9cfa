//! Fetching an artifact and checking every byte before anyone loads it:
//! the one pipeline behind `sluice pull` and the proxy's polling.
//!
//! A poll first asks what the reference points at, as cheaply as the
//! source allows: a registry tag costs one `HEAD` of the manifest, an HTTP
//! layout one conditional `GET` of `index.json` (`If-None-Match`, 304), a
//! digest pin nothing once it is loaded. Only a digest not in service is
//! fetched: manifest, signature, then blobs, each checked against its
//! digest. An artifact refused for what its digest names (too large, an
//! unreadable format, not a Sluice artifact) is remembered by digest, so
//! the same refusal is reported on each poll without fetching it again; a
//! missing signature is looked for again on every poll. A registry is asked
//! directly with plain `GET`s; one that wants a token (even an anonymous
//! one) is asked again through `oci-client`, which does the token dance.

use crate::artifact::{
    ArtifactError, CheckedManifest, VerifiedArtifact, VerifiedSource, MAX_MANIFEST_BYTES,
};
use crate::keys::PublicKey;
use crate::layout::{Index, MAX_INDEX_BYTES};
use crate::registry::{OciRef, Registry, RegistryError, OCI_MANIFEST};
use crate::signature::{self, IdentityPolicy, SignatureError};
use crate::source::{HttpRef, SourceRef};
use std::fmt;
use std::time::Duration;

/// The most signature layers checked for one artifact: the newest (last)
/// distinct signatures of its signature manifest, each payload fetched
/// once. A source listing more cannot make a poll ask for more.
pub const MAX_SIGNATURES: usize = 32;

/// Whose signatures are accepted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// A signature by one of these keys is required.
    Keys(Vec<PublicKey>),
    /// No signature is checked: the operator wrote so explicitly.
    AllowUnsigned,
}

/// How to fetch.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Whose signatures are accepted.
    pub trust: Trust,
    /// Largest artifact (manifest plus blobs) accepted, in bytes.
    pub max_bytes: u64,
    /// Speak plain HTTP to a registry (never the default).
    pub plain_http: bool,
    /// Accept an artifact whose bundle format this Sluice does not read,
    /// handing back its checked source layer to compile.
    pub accept_source_only: bool,
    /// Time allowed for each request.
    pub timeout: Duration,
}

impl FetchConfig {
    /// A configuration with `trust` and the defaults: 64 MiB, HTTPS, no
    /// source-only artifacts, 30 s per request.
    pub fn new(trust: Trust) -> FetchConfig {
        FetchConfig {
            trust,
            max_bytes: crate::artifact::DEFAULT_MAX_BYTES,
            plain_http: false,
            accept_source_only: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a fetch brought.
#[derive(Clone, Debug)]
pub enum Content {
    /// A bundle this Sluice reads.
    Bundle(VerifiedArtifact),
    /// Only the source of an artifact whose bundle format it does not read
    /// ([`FetchConfig::accept_source_only`]).
    Source(VerifiedSource),
}

/// A fetched, verified artifact.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The manifest digest.
    pub digest: String,
    /// The id of the key whose signature verified; `None` when unsigned
    /// artifacts are allowed.
    pub signer: Option<String>,
    /// The bundle, or the source to compile.
    pub content: Content,
}

/// What a poll found.
#[derive(Clone, Debug)]
pub enum Polled {
    /// The reference still points at the artifact in service.
    Unchanged,
    /// A new artifact, verified.
    Fetched(Box<Fetched>),
}

/// Why a fetch failed, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchErrorKind {
    /// The source could not be reached or answered with an error.
    Unreachable,
    /// The reference names nothing.
    NotFound,
    /// Content did not hash to its digest, or had the wrong size.
    Digest,
    /// Unsigned, or no signature verified with the configured keys.
    Signature,
    /// Over `max-bundle-bytes`.
    TooLarge,
    /// A bundle format version this Sluice does not read.
    FormatVersion,
    /// Not a Sluice artifact, or its bundle does not load.
    Invalid,
}

impl FetchErrorKind {
    /// The `result` label of `sluice_policy_fetch_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchErrorKind::Unreachable => "unreachable",
            FetchErrorKind::NotFound => "not_found",
            FetchErrorKind::Digest => "digest_mismatch",
            FetchErrorKind::Signature => "bad_signature",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::FormatVersion => "format_version",
            FetchErrorKind::Invalid => "invalid",
        }
    }

    /// Whether the refusal follows from the bytes the digest names, which
    /// cannot change: such a digest is not fetched again. A missing or bad
    /// signature is not one (signing after pushing is the usual order), nor
    /// bytes that did not match their digest (a registry may repair its
    /// storage), nor an unreachable source.
    pub fn is_content(self) -> bool {
        matches!(
            self,
            FetchErrorKind::TooLarge | FetchErrorKind::FormatVersion | FetchErrorKind::Invalid
        )
    }
}

/// Why a fetch failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    /// The class of failure.
    pub kind: FetchErrorKind,
    /// The manifest digest, when it was known.
    pub digest: Option<String>,
    /// What happened, for people.
    pub message: String,
}

impl FetchError {
    fn new(kind: FetchErrorKind, message: impl fmt::Display) -> FetchError {
        FetchError {
            kind,
            digest: None,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchError {}

impl From<RegistryError> for FetchError {
    fn from(e: RegistryError) -> FetchError {
        let kind = match &e {
            RegistryError::Transport(_) | RegistryError::NoTag(_) => FetchErrorKind::Unreachable,
            RegistryError::NotFound(_) => FetchErrorKind::NotFound,
            RegistryError::DigestMismatch(_) => FetchErrorKind::Digest,
            RegistryError::TooLarge(_) => FetchErrorKind::TooLarge,
        };
        FetchError::new(kind, e)
    }
}

impl From<ArtifactError> for FetchError {
    fn from(e: ArtifactError) -> FetchError {
        let kind = match &e {
            ArtifactError::DigestMismatch { .. } | ArtifactError::SizeMismatch { .. } => {
                FetchErrorKind::Digest
            }
            ArtifactError::TooLarge { .. } => FetchErrorKind::TooLarge,
            ArtifactError::FormatVersion { .. } => FetchErrorKind::FormatVersion,
            _ => FetchErrorKind::Invalid,
        };
        FetchError::new(kind, e)
    }
}

impl From<SignatureError> for FetchError {
    fn from(e: SignatureError) -> FetchError {
        FetchError::new(FetchErrorKind::Signature, e)
    }
}

/// Fetches one reference again and again, remembering what is in service.
pub struct Fetcher {
    source: SourceRef,
    config: FetchConfig,
    http: reqwest::Client,
    registry: Option<Registry>,
    current: Option<String>,
    refused: Option<FetchError>,
    /// The last `index.json` ETag of an HTTP source, and the digest its
    /// tag pointed at then.
    index: Option<(String, String)>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("source", &self.source)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher of `source`. Fails when `source` is an `http://` URL and
    /// plain HTTP was not allowed, or when no HTTP client can be built.
    pub fn new(source: SourceRef, config: FetchConfig) -> Result<Fetcher, FetchError> {
        if source.is_plain_http_url() && !config.plain_http {
            return Err(FetchError::new(
                FetchErrorKind::Invalid,
                format_args!("`{source}` is plain HTTP, which must be allowed explicitly"),
            ));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::limited(5))
            // no redirect from HTTPS down to plain HTTP unless allowed
            .https_only(!config.plain_http)
            .build()
            .map_err(|e| FetchError::new(FetchErrorKind::Unreachable, e))?;
        let registry = match &source {
            SourceRef::Registry(_) => Some(Registry::with_timeout(
                config.plain_http,
                Some(config.timeout),
            )),
            SourceRef::Http(_) => None,
        };
        Ok(Fetcher {
            source,
            config,
            http,
            registry,
            current: None,
            refused: None,
            index: None,
        })
    }

    /// The reference fetched.
    pub fn source(&self) -> &SourceRef {
        &self.source
    }

    /// Records that the artifact `digest` is in service (after it was
    /// installed, or loaded from a cache): polls report [`Polled::Unchanged`]
    /// while the reference points at it.
    pub fn set_current(&mut self, digest: &str) {
        self.current = Some(digest.to_owned());
        if self.refused.as_ref().and_then(|r| r.digest.as_deref()) == Some(digest) {
            self.refused = None;
        }
    }

    /// Records that the artifact `digest` was refused after it was fetched
    /// (its source did not compile, say): later polls report `error`
    /// without fetching it again while the reference points at it.
    pub fn set_refused(&mut self, digest: &str, mut error: FetchError) {
        error.digest = Some(digest.to_owned());
        self.refused = Some(error);
    }

    /// The digest in service, if any.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Asks where the reference points and fetches the artifact when it is
    /// not the one in service. The caller installs what comes back and then
    /// calls [`Fetcher::set_current`].
    pub async fn poll(&mut self) -> Result<Polled, FetchError> {
        let digest = self.resolve().await?;
        if self.current.as_deref() == Some(digest.as_str()) {
            return Ok(Polled::Unchanged);
        }
        if let Some(refused) = &self.refused {
            if refused.digest.as_deref() == Some(digest.as_str()) {
                return Err(refused.clone());
            }
        }
        match self.fetch_digest(&digest).await {
            Ok(fetched) => Ok(Polled::Fetched(Box::new(fetched))),
            Err(mut e) => {
                e.digest = Some(digest);
                if e.kind.is_content() {
                    self.refused = Some(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Fetches and verifies the artifact the reference points at now,
    /// whatever is in service.
    pub async fn fetch(&mut self) -> Result<Fetched, FetchError> {
        self.current = None;
        self.refused = None;
        self.index = None;
        match self.poll().await? {
            Polled::Fetched(f) => Ok(*f),
            Polled::Unchanged => Err(FetchError::new(
                FetchErrorKind::NotFound,
                format_args!("`{}` names nothing", self.source),
            )),
        }
    }

    /// The digest the reference points at.
    async fn resolve(&mut self) -> Result<String, FetchError> {
        if let Some(pin) = self.source.digest() {
            return Ok(pin.to_owned());
        }
        match self.source.clone() {
            SourceRef::Registry(r) => self.resolve_tag(&r).await,
            SourceRef::Http(r) => self.resolve_index(&r).await,
        }
    }

    /// The digest a registry tag points at: one `HEAD` of the manifest.
    /// A registry that asks for credentials, or answers without a digest,
    /// is asked again through the OCI client.
    async fn resolve_tag(&self, r: &OciRef) -> Result<String, FetchError> {
        let scheme = self.registry_scheme();
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{}",
            r.registry(),
            r.repository(),
            r.tag().unwrap_or("latest")
        );
        let response = send(
            self.http
                .head(&url)
                .header(reqwest::header::ACCEPT, OCI_MANIFEST),
            r,
        )
        .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::new(
                FetchErrorKind::NotFound,
                format_args!("the registry has no manifest `{r}`"),
            ));
        }
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| crate::registry::is_sha256_digest(d));
        match header {
            Some(d) if response.status().is_success() => Ok(d.to_owned()),
            _ => Ok(self.registry()?.pull_manifest(r).await?.digest),
        }
    }

    /// The digest an HTTP layout's tag points at: a conditional `GET` of
    /// `index.json`; on 304, the digest the tag pointed at before.
    async fn resolve_index(&mut self, r: &HttpRef) -> Result<String, FetchError> {
        let mut request = self.http.get(r.index_url());
        if let Some((etag, _)) = &self.index {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag.as_str());
        }
        let response = send(request, &r.index_url()).await?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            let Some((_, digest)) = &self.index else {
                return Err(FetchError::new(
                    FetchErrorKind::Unreachable,
                    format_args!(
                        "`{}` answered 304 to an unconditional request",
                        r.index_url()
                    ),
                ));
            };
            return Ok(digest.clone());
        }
        if response.status() != reqwest::StatusCode::OK {
            return Err(status_error(&r.index_url(), response.status()));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let url = r.index_url();
        let bytes = read_limited(response, &url, MAX_INDEX_BYTES).await?;
        let index = Index::parse(&bytes).map_err(|e| {
            FetchError::new(
                FetchErrorKind::Invalid,
                format_args!("`{url}` is not an OCI image index: {e}"),
            )
        })?;
        let tag = r.tag().unwrap_or("latest");
        let digest = index
            .find(tag)
            .map(|d| d.digest.clone())
            .filter(|d| crate::registry::is_sha256_digest(d))
            .ok_or_else(|| {
                FetchError::new(
                    FetchErrorKind::NotFound,
                    format_args!("`{url}` tags no manifest `{tag}`"),
                )
            })?;
        self.index = etag.map(|e| (e, digest.clone()));
        Ok(digest)
    }

    fn registry(&self) -> Result<&Registry, FetchError> {
        self.registry
            .as_ref()
            .ok_or_else(|| FetchError::new(FetchErrorKind::Unreachable, "no registry client"))
    }

    /// Fetches and verifies the artifact `digest`: manifest, signature,
    /// then the blobs (only the source when the format is not readable).
    async fn fetch_digest(&self, digest: &str) -> Result<Fetched, FetchError> {
        let manifest = self.manifest(digest).await?;
        let checked = CheckedManifest::parse(&manifest, digest, self.config.max_bytes)?;
        let signer = match &self.config.trust {
            Trust::AllowUnsigned => None,
            Trust::Keys(keys) => Some(self.verify_signature(digest, keys).await?),
        };
        let content = if checked.is_readable() {
            let config = self
                .blob(&checked.config().digest, checked.config().size)
                .await?;
            let bundle = self
                .blob(&checked.bundle().digest, checked.bundle().size)
                .await?;
            let source = self
                .blob(&checked.source().digest, checked.source().size)
                .await?;
            Content::Bundle(checked.verify_blobs(Some(&config), &bundle, &source)?)
        } else if self.config.accept_source_only {
            let source = self
                .blob(&checked.source().digest, checked.source().size)
                .await?;
            Content::Source(checked.verify_source(&source)?)
        } else {
            return Err(checked.format_error().into());
        };
        Ok(Fetched {
            digest: digest.to_owned(),
            signer,
            content,
        })
    }

    /// The manifest bytes of `digest`, checked against it.
    async fn manifest(&self, digest: &str) -> Result<Vec<u8>, FetchError> {
        match &self.source {
            SourceRef::Registry(r) => {
                match self
                    .registry_get(r, "manifests", digest, MAX_MANIFEST_BYTES as u64)
                    .await?
                {
                    Some(bytes) => Ok(bytes),
                    None => Ok(self
                        .registry()?
                        .pull_manifest(&r.at_digest(digest))
                        .await?
                        .bytes),
                }
            }
            SourceRef::Http(_) => self.blob(digest, MAX_MANIFEST_BYTES as u64).await,
        }
    }

    /// Checks that one of `keys` signed `digest`; the signer's key id.
    async fn verify_signature(
        &self,
        digest: &str,
        keys: &[PublicKey],
    ) -> Result<String, FetchError> {
        let sig_tag = signature::signature_tag(digest)?;
        let (sig_manifest, identity) = match &self.source {
            SourceRef::Registry(r) => {
                let found = match self
                    .registry_get(r, "manifests", &sig_tag, MAX_MANIFEST_BYTES as u64)
                    .await
                {
                    Ok(Some(bytes)) => Some(bytes),
                    Err(e) if e.kind == FetchErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                    Ok(None) => self
                        .registry()?
                        .try_pull_manifest(&r.at_tag(&sig_tag))
                        .await?
                        .map(|m| m.bytes),
                };
                let identity =
                    IdentityPolicy::Repository(format!("{}/{}", r.registry(), r.repository()));
                (found, identity)
            }
            SourceRef::Http(r) => (
                self.layout_signature(r, &sig_tag).await?,
                IdentityPolicy::Any,
            ),
        };
        let Some(sig_manifest) = sig_manifest else {
            return Err(FetchError::new(
                FetchErrorKind::Signature,
                format_args!(
                    "`{}` is unsigned (no signature `{sig_tag}`), and keys are configured",
                    self.source
                ),
            ));
        };
        let layers = signature::signature_layers(&sig_manifest)?;
        // Each signature once (the same payload may carry the signatures of
        // several keys), the newest (last) MAX_SIGNATURES of them, and each
        // payload asked for once.
        let mut seen = std::collections::HashSet::new();
        let mut wanted: Vec<_> = layers
            .into_iter()
            .rev()
            .filter(|l| {
                let signature = l
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(signature::SIGNATURE_ANNOTATION))
                    .cloned();
                l.size <= signature::MAX_PAYLOAD_BYTES && seen.insert((l.digest.clone(), signature))
            })
            .take(MAX_SIGNATURES)
            .collect();
        wanted.reverse();
        let mut payloads: std::collections::HashMap<String, Vec<u8>> =
            std::collections::HashMap::new();
        let mut fetched = Vec::with_capacity(wanted.len());
        for layer in wanted {
            let payload = match payloads.get(&layer.digest) {
                Some(bytes) => bytes.clone(),
                None => {
                    let bytes = self.blob(&layer.digest, layer.size).await?;
                    payloads.insert(layer.digest.clone(), bytes.clone());
                    bytes
                }
            };
            fetched.push((layer, payload));
        }
        Ok(signature::verify(&fetched, keys, digest, &identity)?.key_id)
    }

    /// The signature manifest tagged `sig_tag` in an HTTP layout, if any.
    async fn layout_signature(
        &self,
        r: &HttpRef,
        sig_tag: &str,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let url = r.index_url();
        let response = self.get(&url).await?;
        let bytes = read_limited(response, &url, MAX_INDEX_BYTES).await?;
        let index = Index::parse(&bytes).map_err(|e| {
            FetchError::new(
                FetchErrorKind::Invalid,
                format_args!("`{url}` is not an OCI image index: {e}"),
            )
        })?;
        match index.find(sig_tag) {
            Some(d) => Ok(Some(self.blob(&d.digest, MAX_MANIFEST_BYTES as u64).await?)),
            None => Ok(None),
        }
    }

    /// The blob `digest`, at most `max` bytes, checked against its digest.
    async fn blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let bytes = match &self.source {
            SourceRef::Registry(r) => match self.registry_get(r, "blobs", digest, max).await? {
                Some(bytes) => bytes,
                None => self.registry()?.pull_blob(r, digest, max).await?,
            },
            SourceRef::Http(r) => {
                if !crate::registry::is_sha256_digest(digest) {
                    return Err(FetchError::new(
                        FetchErrorKind::Invalid,
                        format_args!("`{digest}` is not a sha256 digest"),
                    ));
                }
                let url = r.blob_url(digest);
                let response = self.get(&url).await?;
                read_limited(response, &url, max).await?
            }
        };
        let actual = crate::artifact::sha256_digest(&bytes);
        if actual != digest {
            return Err(FetchError::new(
                FetchErrorKind::Digest,
                format_args!(
                    "the blob `{digest}` of `{}` does not match its digest (its bytes hash to `{actual}`)",
                    self.source
                ),
            ));
        }
        Ok(bytes)
    }

    /// `GET /v2/<repo>/<kind>/<reference>` from the registry itself, at
    /// most `max` bytes; `None` when it asks for credentials, which the OCI
    /// client then handles (anonymous access costs no `/v2/` round trip
    /// per request this way).
    async fn registry_get(
        &self,
        r: &OciRef,
        kind: &str,
        reference: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        let url = format!(
            "{}://{}/v2/{}/{kind}/{reference}",
            self.registry_scheme(),
            r.registry(),
            r.repository()
        );
        let response = send(
            self.http
                .get(&url)
                .header(reqwest::header::ACCEPT, OCI_MANIFEST),
            &url,
        )
        .await?;
        match response.status() {
            reqwest::StatusCode::OK => Ok(Some(read_limited(response, &url, max).await?)),
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => Ok(None),
            status => Err(status_error(&url, status)),
        }
    }

    fn registry_scheme(&self) -> &'static str {
        if self.config.plain_http {
            "http"
        } else {
            "https"
        }
    }

    /// A `GET` that must answer 200.
    async fn get(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let response = send(self.http.get(url), &url).await?;
        match response.status() {
            reqwest::StatusCode::OK => Ok(response),
            status => Err(status_error(url, status)),
        }
    }
}

/// Sends `request`; a failure to get any answer is `unreachable`, naming
/// `what` (the reference or the URL).
async fn send(
    request: reqwest::RequestBuilder,
    what: &(dyn fmt::Display + Sync),
) -> Result<reqwest::Response, FetchError> {
    request.send().await.map_err(|e| {
        FetchError::new(
            FetchErrorKind::Unreachable,
            format_args!("cannot reach `{what}`: {}", error_chain(&e)),
        )
    })
}

/// The error for an answer other than 200: 404 is `not_found`, any other
/// status `unreachable`.
fn status_error(url: &str, status: reqwest::StatusCode) -> FetchError {
    if status == reqwest::StatusCode::NOT_FOUND {
        FetchError::new(
            FetchErrorKind::NotFound,
            format_args!("`{url}` answered 404"),
        )
    } else {
        FetchError::new(
            FetchErrorKind::Unreachable,
            format_args!("`{url}` answered {status}"),
        )
    }
}

/// The body of `response`, refused once it passes `max` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    max: u64,
) -> Result<Vec<u8>, FetchError> {
    let too_large = |size: u64| {
        FetchError::new(
            FetchErrorKind::TooLarge,
            format_args!("`{url}` has more than {max} bytes ({size} or more)"),
        )
    };
    if let Some(len) = response.content_length() {
        if len > max {
            return Err(too_large(len));
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        FetchError::new(
            FetchErrorKind::Unreachable,
            format_args!("cannot read `{url}`: {}", error_chain(&e)),
        )
    })? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A loopback HTTP server answering `200 ok` to each connection; the
    /// number of connections it accepted.
    fn plain_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        (port, accepted)
    }

    /// Without `plain_http`, the client speaks only HTTPS: a redirect from
    /// an `https://` source to `http://` (which a MITM could then answer
    /// with any tag it likes) is refused like a plain URL, before any
    /// connection.
    #[tokio::test(flavor = "current_thread")]
    async fn plain_http_is_spoken_only_when_allowed() {
        let (port, accepted) = plain_server();
        let url = format!("http://127.0.0.1:{port}/policies/p/index.json");

        let https = SourceRef::parse("https://127.0.0.1:1/policies/p:v1").unwrap();
        let strict = Fetcher::new(https, FetchConfig::new(Trust::AllowUnsigned)).unwrap();
        let refused = strict.http.get(&url).send().await;
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

        let plain = SourceRef::parse(&format!("http://127.0.0.1:{port}/policies/p:v1")).unwrap();
        let mut config = FetchConfig::new(Trust::AllowUnsigned);
        config.plain_http = true;
        let allowed = Fetcher::new(plain, config).unwrap();
        let answer = allowed.http.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
