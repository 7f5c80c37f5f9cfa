//! The SPIFFE Workload API client: a workload's SVID and trust bundles from
//! the agent's Unix socket (as SPIRE's agent serves it).
//!
//! The client is a tonic client (framing, status and `grpc-message`
//! decoding are tonic's): one tonic channel over a [`UnixStream`] per call,
//! one server-streaming `FetchX509SVID` call carrying the security header
//! `workload.spiffe.io: true`, its `X509SVIDResponse` messages decoded with
//! hand-written `prost` messages of the published `workload.proto` (no
//! `protoc`, no generated code).
//!
//! [`WorkloadApiClient::run`] installs the first SVID and the trust bundles
//! (the SVID's own trust domain plus every federated one) into an
//! [`IdentityStore`] on every update, and reconnects with a doubling backoff
//! when the stream ends or fails. An update that cannot be used (a
//! certificate that does not parse, a key that does not match, an invalid
//! SPIFFE ID) is logged and ignored: the previous identity keeps serving.

use super::{Credentials, IdentityError, IdentityStore, TrustBundles};
use http::uri::{PathAndQuery, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sluice_runtime::SpiffeId;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::codec::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

/// The gRPC path of the X.509-SVID stream (`workload.proto` has no package).
pub const FETCH_X509_SVID_PATH: &str = "/SpiffeWorkloadAPI/FetchX509SVID";

/// The security header every Workload API request carries (value `true`).
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The largest gRPC message accepted from the agent.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The messages of the published `workload.proto`, written by hand.
pub(crate) mod proto {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct X509SvidRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct X509SvidResponse {
        #[prost(message, repeated, tag = "1")]
        pub(crate) svids: Vec<X509Svid>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub(crate) crl: Vec<Vec<u8>>,
        #[prost(map = "string, bytes", tag = "3")]
        pub(crate) federated_bundles: HashMap<String, Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct X509Svid {
        #[prost(string, tag = "1")]
        pub(crate) spiffe_id: String,
        #[prost(bytes = "vec", tag = "2")]
        pub(crate) x509_svid: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub(crate) x509_svid_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub(crate) bundle: Vec<u8>,
        #[prost(string, tag = "5")]
        pub(crate) hint: String,
    }
}

/// Why the Workload API gave no usable identity.
#[derive(Debug)]
pub enum WorkloadApiError {
    /// The socket address is neither a path nor `unix:///path`.
    InvalidSocket(String),
    /// The Unix socket could not be connected.
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The HTTP/2 connection could not be set up.
    Transport(tonic::transport::Error),
    /// The agent did not answer in time.
    Timeout(Duration),
    /// The call failed: the agent ended it with a non-zero gRPC status, or
    /// tonic gave one for a broken stream (a malformed frame, an HTTP
    /// status other than 200, a reset).
    Status {
        /// The gRPC status code (7 is `PermissionDenied`, 3 `InvalidArgument`).
        code: u32,
        /// The (percent-decoded) `grpc-message`.
        message: String,
    },
    /// A message is not an `X509SVIDResponse`.
    Decode(prost::DecodeError),
    /// The stream ended before an update arrived.
    StreamEnded,
    /// An update carries no SVID.
    NoSvid,
    /// An update's SPIFFE ID is not valid.
    InvalidSpiffeId(String),
    /// A federated bundle's key is not a trust domain (`spiffe://td` or `td`).
    InvalidTrustDomain(String),
    /// Two federated bundles name the same trust domain.
    DuplicateTrustDomain(String),
    /// A DER certificate list (chain or bundle) is malformed.
    Certificates {
        /// Which list: `svid`, or the trust domain of a bundle.
        what: String,
        /// Why.
        reason: String,
    },
    /// The leaf certificate does not carry the update's SPIFFE ID.
    SpiffeIdMismatch {
        /// The ID the agent announced.
        expected: String,
        /// The URI SANs of the leaf.
        found: Vec<String>,
    },
    /// The identity store refused the credentials or the bundles.
    Identity(IdentityError),
}

impl fmt::Display for WorkloadApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadApiError::InvalidSocket(s) => write!(
                f,
                "invalid workload api socket `{s}` (expected a path or `unix:///path`)"
            ),
            WorkloadApiError::Connect { path, error } => write!(
                f,
                "cannot connect to the workload api at `{}`: {error}",
                path.display()
            ),
            WorkloadApiError::Transport(e) => match std::error::Error::source(e) {
                Some(source) => write!(f, "workload api http/2 error: {e}: {source}"),
                None => write!(f, "workload api http/2 error: {e}"),
            },
            WorkloadApiError::Timeout(d) => {
                write!(
                    f,
                    "the workload api did not answer within {} ms",
                    d.as_millis()
                )
            }
            WorkloadApiError::Status { code, message } => write!(
                f,
                "the workload api returned grpc status {code} ({}): {message}",
                grpc_code_name(*code)
            ),
            WorkloadApiError::Decode(e) => write!(f, "cannot decode an x509 svid response: {e}"),
            WorkloadApiError::StreamEnded => write!(f, "the workload api stream ended"),
            WorkloadApiError::NoSvid => write!(f, "the workload api update carries no svid"),
            WorkloadApiError::InvalidSpiffeId(id) => write!(f, "invalid spiffe id `{id}`"),
            WorkloadApiError::InvalidTrustDomain(td) => {
                write!(f, "invalid federated trust domain `{td}`")
            }
            WorkloadApiError::DuplicateTrustDomain(td) => {
                write!(f, "federated trust domain `{td}` appears twice")
            }
            WorkloadApiError::Certificates { what, reason } => {
                write!(f, "bad certificates in the {what}: {reason}")
            }
            WorkloadApiError::SpiffeIdMismatch { expected, found } => write!(
                f,
                "the svid leaf certificate is for {found:?}, not `{expected}`"
            ),
            WorkloadApiError::Identity(e) => write!(f, "identity rejected: {e}"),
        }
    }
}

impl std::error::Error for WorkloadApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkloadApiError::Connect { error, .. } => Some(error),
            WorkloadApiError::Transport(e) => Some(e),
            WorkloadApiError::Decode(e) => Some(e),
            WorkloadApiError::Identity(e) => Some(e),
            _ => None,
        }
    }
}

impl WorkloadApiError {
    /// Whether the error is about the content of one update (the stream
    /// stays up and the next update may be good), rather than the stream.
    pub fn is_bad_update(&self) -> bool {
        matches!(
            self,
            WorkloadApiError::NoSvid
                | WorkloadApiError::InvalidSpiffeId(_)
                | WorkloadApiError::InvalidTrustDomain(_)
                | WorkloadApiError::DuplicateTrustDomain(_)
                | WorkloadApiError::Certificates { .. }
                | WorkloadApiError::SpiffeIdMismatch { .. }
                | WorkloadApiError::Identity(_)
        )
    }
}

impl From<tonic::Status> for WorkloadApiError {
    fn from(status: tonic::Status) -> WorkloadApiError {
        WorkloadApiError::Status {
            code: u32::try_from(i32::from(status.code())).unwrap_or(2),
            message: status.message().to_owned(),
        }
    }
}

fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "ok",
        1 => "cancelled",
        2 => "unknown",
        3 => "invalid argument",
        4 => "deadline exceeded",
        5 => "not found",
        6 => "already exists",
        7 => "permission denied",
        8 => "resource exhausted",
        9 => "failed precondition",
        10 => "aborted",
        11 => "out of range",
        12 => "unimplemented",
        13 => "internal",
        14 => "unavailable",
        15 => "data loss",
        16 => "unauthenticated",
        _ => "unrecognized code",
    }
}

/// One usable update from the Workload API: the first SVID and every
/// trust bundle, already split into certificates and checked.
#[derive(Debug)]
pub struct Update {
    /// The SVID's SPIFFE ID (`spiffe://example.org/ns/default/sa/web`).
    pub spiffe_id: String,
    /// Its trust domain (`example.org`).
    pub trust_domain: String,
    /// The certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The PKCS#8 private key of the leaf.
    pub key: PrivateKeyDer<'static>,
    /// The agent's hint for the SVID (often empty).
    pub hint: String,
    /// Trust domain name (`example.org`, no scheme) to its CA certificates:
    /// the SVID's own trust domain and every federated one.
    pub bundles: BTreeMap<String, Vec<CertificateDer<'static>>>,
    /// How many SVIDs the agent offered (only the first is used).
    pub svid_count: usize,
    /// How many CRLs the agent sent (not used by the proxy).
    pub crl_count: usize,
}

impl Update {
    /// The update's credentials, as the identity store takes them.
    pub fn credentials(&self) -> Result<Credentials, IdentityError> {
        Credentials::from_der(self.chain.clone(), self.key.clone_key())
    }

    /// The update's trust bundles, as the identity store takes them.
    pub fn trust_bundles(&self) -> Result<TrustBundles, IdentityError> {
        let mut bundles = TrustBundles::new();
        for (td, roots) in &self.bundles {
            bundles.insert(td, roots.clone())?;
        }
        Ok(bundles)
    }

    /// Installs the credentials and the trust bundles into `store`, both or
    /// neither: on error the store keeps what it had.
    pub fn install(&self, store: &IdentityStore) -> Result<(), WorkloadApiError> {
        let creds = self.credentials().map_err(WorkloadApiError::Identity)?;
        let bundles = self.trust_bundles().map_err(WorkloadApiError::Identity)?;
        store.set_trust_bundles(bundles);
        store.set_credentials(creds);
        Ok(())
    }

    /// Checks one decoded `X509SVIDResponse` and makes it an update.
    pub(crate) fn from_response(resp: proto::X509SvidResponse) -> Result<Update, WorkloadApiError> {
        let svid_count = resp.svids.len();
        let crl_count = resp.crl.len();
        let svid = resp
            .svids
            .into_iter()
            .next()
            .ok_or(WorkloadApiError::NoSvid)?;
        let trust_domain = trust_domain_of(&svid.spiffe_id)
            .ok_or_else(|| WorkloadApiError::InvalidSpiffeId(svid.spiffe_id.clone()))?
            .to_owned();
        let chain = split_certificates(&svid.x509_svid).map_err(|reason| {
            WorkloadApiError::Certificates {
                what: "svid".into(),
                reason,
            }
        })?;
        let Some(leaf) = chain.first() else {
            return Err(WorkloadApiError::Certificates {
                what: "svid".into(),
                reason: "the chain is empty".into(),
            });
        };
        let found = uri_sans(leaf).map_err(|reason| WorkloadApiError::Certificates {
            what: "svid".into(),
            reason,
        })?;
        if found.len() != 1 || found[0] != svid.spiffe_id {
            return Err(WorkloadApiError::SpiffeIdMismatch {
                expected: svid.spiffe_id,
                found,
            });
        }
        if svid.x509_svid_key.is_empty() {
            return Err(WorkloadApiError::Certificates {
                what: "svid".into(),
                reason: "the private key is empty".into(),
            });
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.x509_svid_key));
        let mut bundles = BTreeMap::new();
        bundles.insert(
            trust_domain.clone(),
            bundle_certificates(&trust_domain, &svid.bundle)?,
        );
        // Sorted, so that errors and logs do not depend on hash order.
        let federated: BTreeMap<String, Vec<u8>> = resp.federated_bundles.into_iter().collect();
        for (key, der) in federated {
            let td = federated_trust_domain(&key)
                .ok_or_else(|| WorkloadApiError::InvalidTrustDomain(key.clone()))?;
            if td == trust_domain {
                tracing::warn!(
                    trust_domain = td,
                    "the workload api sent a federated bundle for the svid's own trust domain; ignored"
                );
                continue;
            }
            if bundles.contains_key(td) {
                return Err(WorkloadApiError::DuplicateTrustDomain(td.to_owned()));
            }
            let roots = bundle_certificates(td, &der)?;
            bundles.insert(td.to_owned(), roots);
        }
        Ok(Update {
            spiffe_id: svid.spiffe_id,
            trust_domain,
            chain,
            key,
            hint: svid.hint,
            bundles,
            svid_count,
            crl_count,
        })
    }
}

fn bundle_certificates(
    td: &str,
    der: &[u8],
) -> Result<Vec<CertificateDer<'static>>, WorkloadApiError> {
    let certs = split_certificates(der).map_err(|reason| WorkloadApiError::Certificates {
        what: format!("bundle of `{td}`"),
        reason,
    })?;
    if certs.is_empty() {
        return Err(WorkloadApiError::Certificates {
            what: format!("bundle of `{td}`"),
            reason: "the bundle is empty".into(),
        });
    }
    Ok(certs)
}

/// Whether `td` is a SPIFFE trust domain name: lowercase letters, digits,
/// `.`, `-` and `_`, not empty.
fn is_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.len() <= 255
        && td.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// The trust domain of a SPIFFE ID, if the ID is valid and its trust
/// domain has at most 255 bytes.
fn trust_domain_of(id: &str) -> Option<&str> {
    SpiffeId::parse(id)
        .ok()
        .map(|id| id.trust_domain())
        .filter(|td| td.len() <= 255)
}

/// A federated bundle's key: `spiffe://partner.org` or `partner.org`.
fn federated_trust_domain(key: &str) -> Option<&str> {
    let td = key.strip_prefix("spiffe://").unwrap_or(key);
    let td = td.strip_suffix('/').unwrap_or(td);
    is_trust_domain(td).then_some(td)
}

/// The URI SANs of a certificate.
fn uri_sans(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
    let san = parsed.subject_alternative_name().map_err(|e| {
        format!("the leaf certificate's subject alternative names do not parse: {e}")
    })?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Splits concatenated ASN.1 DER certificates (as the Workload API sends
/// chains and bundles) into certificates, each checked to parse as X.509.
/// Empty input gives an empty list.
pub fn split_der_certificates(
    der: &[u8],
) -> Result<Vec<CertificateDer<'static>>, WorkloadApiError> {
    split_certificates(der).map_err(|reason| WorkloadApiError::Certificates {
        what: "der list".into(),
        reason,
    })
}

fn split_certificates(mut der: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    while !der.is_empty() {
        let n = certs.len() + 1;
        let len = der_sequence_len(der).map_err(|e| format!("certificate {n}: {e}"))?;
        let (cert, rest) = der.split_at(len);
        x509_parser::parse_x509_certificate(cert)
            .map_err(|e| format!("certificate {n} does not parse: {e}"))?;
        certs.push(CertificateDer::from(cert.to_vec()));
        der = rest;
    }
    Ok(certs)
}

/// The total length (header included) of the DER SEQUENCE at the start of
/// `der`, checked to fit in `der`.
fn der_sequence_len(der: &[u8]) -> Result<usize, &'static str> {
    let (&tag, rest) = der.split_first().ok_or("truncated")?;
    if tag != 0x30 {
        return Err("not a der sequence");
    }
    let (&first, rest) = rest.split_first().ok_or("truncated length")?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("unsupported der length");
        }
        let bytes = rest.get(..n).ok_or("truncated length")?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let total = header + len;
    if total > der.len() {
        return Err("truncated");
    }
    Ok(total)
}

/// Parses a Workload API socket address: `unix:///path`, `unix:/path` or a
/// plain path.
pub fn parse_socket(socket: impl AsRef<Path>) -> Result<PathBuf, WorkloadApiError> {
    let socket = socket.as_ref();
    let Some(s) = socket.to_str() else {
        // Not UTF-8: can only be a plain path.
        return Ok(socket.to_owned());
    };
    let invalid = || WorkloadApiError::InvalidSocket(s.to_owned());
    if s.is_empty() {
        return Err(invalid());
    }
    if let Some(rest) = s.strip_prefix("unix:") {
        let path = match rest.strip_prefix("//") {
            Some(after) => after, // the authority must be empty: `unix:///path`
            None => rest,
        };
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#']) {
            return Err(invalid());
        }
        return Ok(PathBuf::from(path));
    }
    if s.contains("://") {
        return Err(invalid());
    }
    Ok(PathBuf::from(s))
}

/// What [`WorkloadApiClient::run`] reports to its callback.
#[derive(Debug)]
pub enum Event<'a> {
    /// An update was installed into the store.
    Installed(&'a Update),
    /// An update was rejected; the previous identity keeps serving.
    Rejected(&'a WorkloadApiError),
    /// The stream failed or ended; the client reconnects after `retry_in`.
    Disconnected {
        /// Why.
        error: &'a WorkloadApiError,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
}

/// A client of the SPIFFE Workload API on a Unix socket.
#[derive(Clone, Debug)]
pub struct WorkloadApiClient {
    socket: PathBuf,
    connect_timeout: Duration,
    fetch_timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl WorkloadApiClient {
    /// A client of the socket at `socket` (`unix:///path`, `unix:/path` or
    /// a path), with a 100 ms backoff doubling to 5 s, a 5 s connect
    /// timeout and a 10 s timeout for [`fetch_once`](Self::fetch_once).
    pub fn new(socket: impl AsRef<Path>) -> Result<WorkloadApiClient, WorkloadApiError> {
        Ok(WorkloadApiClient {
            socket: parse_socket(socket)?,
            connect_timeout: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        })
    }

    /// Sets the reconnection backoff: `initial`, doubling up to `max`.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> WorkloadApiClient {
        self.initial_backoff = initial.max(Duration::from_millis(1));
        self.max_backoff = max.max(self.initial_backoff);
        self
    }

    /// Sets the timeout of the connection (socket and HTTP/2 handshake).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> WorkloadApiClient {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the timeout of [`fetch_once`](Self::fetch_once) as a whole.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> WorkloadApiClient {
        self.fetch_timeout = timeout;
        self
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Connects, reads the first update and closes the stream.
    pub async fn fetch_once(&self) -> Result<Update, WorkloadApiError> {
        let fetch = async {
            let mut stream = SvidStream::open(&self.socket, self.connect_timeout).await?;
            match stream.next().await? {
                Some(resp) => Update::from_response(resp),
                None => Err(WorkloadApiError::StreamEnded),
            }
        };
        tokio::time::timeout(self.fetch_timeout, fetch)
            .await
            .unwrap_or(Err(WorkloadApiError::Timeout(self.fetch_timeout)))
    }

    /// Streams updates into `store` forever: every usable update is
    /// installed (credentials and bundles together) and reported to
    /// `on_event`; a bad one is logged and ignored; a failed or ended
    /// stream is reconnected after a backoff that doubles from the initial
    /// one to the maximum, and starts again after an installed update.
    /// Never returns; abort the task to stop it.
    pub async fn run(
        self,
        store: Arc<IdentityStore>,
        on_event: impl Fn(&Event<'_>) + Send + Sync + 'static,
    ) {
        let mut backoff = self.initial_backoff;
        loop {
            let error = self.stream_into(&store, &on_event, &mut backoff).await;
            tracing::warn!(
                socket = %self.socket.display(),
                error = %error,
                retry_in_ms = backoff.as_millis() as u64,
                "workload api stream ended; reconnecting"
            );
            on_event(&Event::Disconnected {
                error: &error,
                retry_in: backoff,
            });
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// One connection: installs updates until the stream ends; returns why.
    async fn stream_into(
        &self,
        store: &IdentityStore,
        on_event: &(impl Fn(&Event<'_>) + Send + Sync),
        backoff: &mut Duration,
    ) -> WorkloadApiError {
        let mut stream = match SvidStream::open(&self.socket, self.connect_timeout).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        tracing::debug!(socket = %self.socket.display(), "workload api stream open");
        loop {
            let resp = match stream.next().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return WorkloadApiError::StreamEnded,
                Err(e) => return e,
            };
            match Update::from_response(resp).and_then(|u| u.install(store).map(|()| u)) {
                Ok(update) => {
                    *backoff = self.initial_backoff;
                    tracing::info!(
                        spiffe_id = %update.spiffe_id,
                        trust_domains = ?update.bundles.keys().collect::<Vec<_>>(),
                        svids = update.svid_count,
                        "identity updated from the workload api"
                    );
                    on_event(&Event::Installed(&update));
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "workload api update rejected; the previous identity keeps serving"
                    );
                    on_event(&Event::Rejected(&e));
                }
            }
        }
    }
}

/// Connects to `socket` and reads its first update (see
/// [`WorkloadApiClient::fetch_once`]).
pub async fn fetch_once(socket: impl AsRef<Path>) -> Result<Update, WorkloadApiError> {
    WorkloadApiClient::new(socket)?.fetch_once().await
}

/// Hands tonic the Unix stream [`SvidStream::open`] connected, once: a
/// channel carries one call, and the client reconnects with a new one.
struct ConnectedSocket(Option<UnixStream>);

impl tower_service::Service<Uri> for ConnectedSocket {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        std::future::ready(self.0.take().map(TokioIo::new).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the workload api connection was closed",
            )
        }))
    }
}

/// The `X509SVIDResponse` messages of the Workload API, as tonic decodes
/// them with hand-written prost messages.
pub(crate) type Codec = ProstCodec<proto::X509SvidRequest, proto::X509SvidResponse>;

/// One `FetchX509SVID` call: its messages, and the channel that carries it.
struct SvidStream {
    messages: Streaming<proto::X509SvidResponse>,
    _channel: Channel,
}

impl SvidStream {
    async fn open(
        socket: &Path,
        connect_timeout: Duration,
    ) -> Result<SvidStream, WorkloadApiError> {
        let connect = async {
            let io =
                UnixStream::connect(socket)
                    .await
                    .map_err(|error| WorkloadApiError::Connect {
                        path: socket.to_owned(),
                        error,
                    })?;
            Endpoint::from_static("http://localhost")
                .connect_with_connector(ConnectedSocket(Some(io)))
                .await
                .map_err(WorkloadApiError::Transport)
        };
        let channel = tokio::time::timeout(connect_timeout, connect)
            .await
            .unwrap_or(Err(WorkloadApiError::Timeout(connect_timeout)))?;
        let mut grpc =
            tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        grpc.ready().await.map_err(WorkloadApiError::Transport)?;
        let mut request = tonic::Request::new(proto::X509SvidRequest {});
        request
            .metadata_mut()
            .insert(SECURITY_HEADER, MetadataValue::from_static("true"));
        let response = grpc
            .server_streaming(
                request,
                PathAndQuery::from_static(FETCH_X509_SVID_PATH),
                Codec::default(),
            )
            .await
            .map_err(WorkloadApiError::from)?;
        Ok(SvidStream {
            messages: response.into_inner(),
            _channel: channel,
        })
    }

    /// The next message, or `None` when the call ended with status 0.
    async fn next(&mut self) -> Result<Option<proto::X509SvidResponse>, WorkloadApiError> {
        self.messages
            .message()
            .await
            .map_err(WorkloadApiError::from)
    }
}
