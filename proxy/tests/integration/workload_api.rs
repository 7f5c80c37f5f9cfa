//! The SPIFFE Workload API client against test Workload API servers on Unix
//! sockets: a real gRPC server (tonic, hand-written messages and service, no
//! protoc) that behaves like SPIRE's agent, and a raw HTTP/2 server that
//! cuts gRPC frames across and within DATA chunks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sluice_identity::workload_api::{self, Event, WorkloadApiClient, WorkloadApiError};
use sluice_identity::IdentityStore;
use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::Status;

/// The messages of the published `workload.proto`, written for the test
/// server independently of the client's.
mod proto {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct X509SvidRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct X509SvidResponse {
        #[prost(message, repeated, tag = "1")]
        pub svids: Vec<X509Svid>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub crl: Vec<Vec<u8>>,
        #[prost(map = "string, bytes", tag = "3")]
        pub federated_bundles: HashMap<String, Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct X509Svid {
        #[prost(string, tag = "1")]
        pub spiffe_id: String,
        #[prost(bytes = "vec", tag = "2")]
        pub x509_svid: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub x509_svid_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub bundle: Vec<u8>,
        #[prost(string, tag = "5")]
        pub hint: String,
    }
}

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

// ---------------------------------------------------------------- certificates

/// A CA with a URI SAN `spiffe://<td>`.
struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(td: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{td}").try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca {
        der,
        issuer: Issuer::new(params, key),
    }
}

/// An intermediate CA under `ca` whose URI SAN is `id`.
fn intermediate(ca: &Ca, id: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let der = params.signed_by(&key, &ca.issuer).unwrap().der().to_vec();
    Ca {
        der,
        issuer: Issuer::new(params, key),
    }
}

/// A fresh SVID leaf for `id` signed by `ca`: (cert DER, PKCS#8 key DER).
fn leaf(ca: &Ca, id: &str) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

struct Pki {
    example: Ca,
    partner: Ca,
}

fn pki() -> Pki {
    Pki {
        example: ca("example.org"),
        partner: ca("partner.org"),
    }
}

/// An update as SPIRE sends it: one SVID of `example.org`, its bundle, and
/// the `partner.org` bundle keyed by its trust domain ID.
fn response(pki: &Pki, id: &str) -> (proto::X509SvidResponse, Vec<u8>) {
    let (cert, key) = leaf(&pki.example, id);
    let svid = proto::X509Svid {
        spiffe_id: id.to_owned(),
        x509_svid: cert.clone(),
        x509_svid_key: key,
        bundle: pki.example.der.clone(),
        hint: "internal".into(),
    };
    let resp = proto::X509SvidResponse {
        svids: vec![svid],
        crl: vec![],
        federated_bundles: [("spiffe://partner.org".to_owned(), pki.partner.der.clone())].into(),
    };
    (resp, cert)
}

// ---------------------------------------------------------------- temp dirs

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Short: a Unix socket path is limited to ~100 bytes.
        let dir = std::env::temp_dir().join(format!("slwl-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("agent.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- tonic server

type Reply = Result<proto::X509SvidResponse, Status>;

/// What the test Workload API serves, shared by every call.
#[derive(Default)]
struct State {
    current: Mutex<Option<proto::X509SvidResponse>>,
    streams: Mutex<Vec<mpsc::Sender<Reply>>>,
    /// Answer `PermissionDenied` ("no identity issued"), as SPIRE does for
    /// an unregistered workload.
    deny: AtomicBool,
    /// Calls refused for lack of the security header.
    refused: AtomicUsize,
    /// Calls accepted.
    calls: AtomicUsize,
}

impl State {
    fn open(
        &self,
        req: &tonic::Request<proto::X509SvidRequest>,
    ) -> Result<ReceiverStream<Reply>, Status> {
        let header = req
            .metadata()
            .get("workload.spiffe.io")
            .and_then(|v| v.to_str().ok());
        if header != Some("true") {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Status::invalid_argument(
                "security header missing from request",
            ));
        }
        if self.deny.load(Ordering::SeqCst) {
            return Err(Status::permission_denied("no identity issued"));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(16);
        if let Some(current) = self.current.lock().unwrap().clone() {
            let _ = tx.try_send(Ok(current));
        }
        self.streams.lock().unwrap().push(tx);
        Ok(ReceiverStream::new(rx))
    }

    /// Makes `resp` current and streams it to every open call.
    fn push(&self, resp: proto::X509SvidResponse) {
        *self.current.lock().unwrap() = Some(resp.clone());
        self.streams
            .lock()
            .unwrap()
            .retain(|tx| tx.try_send(Ok(resp.clone())).is_ok());
    }

    /// Streams `resp` to every open call without making it current.
    fn push_once(&self, resp: proto::X509SvidResponse) {
        self.streams
            .lock()
            .unwrap()
            .retain(|tx| tx.try_send(Ok(resp.clone())).is_ok());
    }

    /// Ends every open call with status OK.
    fn end_streams(&self) {
        self.streams.lock().unwrap().clear();
    }
}

/// The hand-written `SpiffeWorkloadAPI` service.
#[derive(Clone)]
struct WorkloadApi(Arc<State>);

impl tonic::server::NamedService for WorkloadApi {
    const NAME: &'static str = "SpiffeWorkloadAPI";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for WorkloadApi {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            if req.uri().path() != "/SpiffeWorkloadAPI/FetchX509SVID" {
                return Ok(Status::unimplemented("unknown method").into_http());
            }
            let codec =
                tonic_prost::ProstCodec::<proto::X509SvidResponse, proto::X509SvidRequest>::default(
                );
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.server_streaming(FetchX509Svid(state), req).await)
        })
    }
}

/// The server-streaming `FetchX509SVID` method.
struct FetchX509Svid(Arc<State>);

impl tonic::server::ServerStreamingService<proto::X509SvidRequest> for FetchX509Svid {
    type Response = proto::X509SvidResponse;
    type ResponseStream = ReceiverStream<Reply>;
    type Future = std::future::Ready<Result<tonic::Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, req: tonic::Request<proto::X509SvidRequest>) -> Self::Future {
        std::future::ready(self.0.open(&req).map(tonic::Response::new))
    }
}

struct Agent {
    dir: TempDir,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    fn start(name: &str) -> Agent {
        let dir = TempDir::new(name);
        let listener = UnixListener::bind(dir.socket()).unwrap();
        let state = Arc::new(State::default());
        let svc = WorkloadApi(state.clone());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming(svc, UnixListenerStream::new(listener))
                .await;
        });
        Agent { dir, state, task }
    }

    fn socket(&self) -> PathBuf {
        self.dir.socket()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- helpers

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Events of a running client, as strings.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn callback(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let log = self.0.clone();
        move |e: &Event<'_>| {
            let line = match e {
                Event::Installed(u) => format!("installed {}", u.spiffe_id),
                Event::Rejected(e) => format!("rejected {e}"),
                Event::Disconnected { error, .. } => format!("disconnected {error}"),
            };
            log.lock().unwrap().push(line);
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn leaf_of(store: &IdentityStore) -> Option<Vec<u8>> {
    store.credentials().map(|c| c.chain()[0].as_ref().to_vec())
}

fn client(socket: &Path) -> WorkloadApiClient {
    WorkloadApiClient::new(socket)
        .unwrap()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .with_fetch_timeout(Duration::from_secs(3))
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn fetch_once_returns_the_svid_and_both_bundles() {
    let pki = pki();
    let agent = Agent::start("fetch");
    let (resp, cert) = response(&pki, WEB);
    agent.state.push(resp);

    let socket = format!("unix://{}", agent.socket().display());
    let update = workload_api::fetch_once(&socket).await.unwrap();
    assert_eq!(update.spiffe_id, WEB);
    assert_eq!(update.trust_domain, "example.org");
    assert_eq!(update.hint, "internal");
    assert_eq!(update.svid_count, 1);
    assert_eq!(update.chain.len(), 1);
    assert_eq!(update.chain[0].as_ref(), cert.as_slice());
    assert_eq!(
        update.bundles.keys().collect::<Vec<_>>(),
        ["example.org", "partner.org"]
    );
    assert_eq!(
        update.bundles["example.org"][0].as_ref(),
        pki.example.der.as_slice()
    );
    assert_eq!(
        update.bundles["partner.org"][0].as_ref(),
        pki.partner.der.as_slice()
    );
    // The update is usable as is.
    update.credentials().unwrap();
    update.trust_bundles().unwrap();
    // A plain path works too.
    let again = workload_api::fetch_once(agent.socket()).await.unwrap();
    assert_eq!(again.spiffe_id, WEB);
    assert_eq!(agent.state.calls.load(Ordering::SeqCst), 2);
    assert_eq!(agent.state.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn run_installs_rotates_and_reconnects() {
    let pki = pki();
    let agent = Agent::start("run");
    let (resp, first) = response(&pki, WEB);
    agent.state.push(resp);

    let store = IdentityStore::new();
    let events = Events::default();
    let task = tokio::spawn(client(&agent.socket()).run(store.clone(), events.callback()));

    eventually("the first identity", || store.has_credentials()).await;
    assert_eq!(store.spiffe_id().as_deref(), Some(WEB));
    assert_eq!(leaf_of(&store), Some(first.clone()));
    let bundles = store.trust_bundles();
    assert_eq!(
        bundles.trust_domains().collect::<Vec<_>>(),
        ["example.org", "partner.org"]
    );
    assert_eq!(
        bundles.roots("partner.org").unwrap()[0].as_ref(),
        pki.partner.der.as_slice()
    );

    // The agent rotates the SVID on the open stream: a new leaf and key.
    let (rotated, second) = response(&pki, WEB);
    assert_ne!(first, second);
    agent.state.push(rotated);
    eventually("the rotated svid", || {
        leaf_of(&store) == Some(second.clone())
    })
    .await;
    assert_eq!(
        agent.state.calls.load(Ordering::SeqCst),
        1,
        "rotation came on the same stream"
    );

    // A new identity for the workload.
    let (renamed, third) = response(&pki, "spiffe://example.org/ns/default/sa/web-v2");
    agent.state.push(renamed);
    eventually("the new spiffe id", || {
        store.spiffe_id().as_deref() == Some("spiffe://example.org/ns/default/sa/web-v2")
    })
    .await;
    assert_eq!(leaf_of(&store), Some(third));

    // The agent ends the stream: the client reconnects and gets the
    // current identity again.
    agent.state.end_streams();
    eventually("a reconnection", || {
        agent.state.calls.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("the identity after reconnecting", || {
        events.count("installed") == 4
    })
    .await;
    assert_eq!(
        events.count("disconnected the workload api stream ended"),
        1,
        "{:?}",
        events.all()
    );
    assert_eq!(events.count("rejected"), 0);
    task.abort();
}

#[tokio::test]
async fn a_bad_update_keeps_the_previous_identity() {
    let pki = pki();
    let agent = Agent::start("bad");
    let (resp, good) = response(&pki, WEB);
    agent.state.push(resp.clone());

    let store = IdentityStore::new();
    let events = Events::default();
    let task = tokio::spawn(client(&agent.socket()).run(store.clone(), events.callback()));
    eventually("the first identity", || store.has_credentials()).await;

    // Garbage instead of a certificate.
    let mut garbage = resp.clone();
    garbage.svids[0].x509_svid = b"garbage".to_vec();
    agent.state.push_once(garbage);
    eventually("the garbage rejected", || events.count("rejected") == 1).await;

    // A DER sequence that is not a certificate.
    let mut not_a_cert = resp.clone();
    not_a_cert.svids[0].x509_svid = vec![0x30, 0x03, 0x02, 0x01, 0x01];
    agent.state.push_once(not_a_cert);
    eventually("the non-certificate rejected", || {
        events.count("rejected") == 2
    })
    .await;

    // A key that is not the leaf's.
    let mut mismatch = resp.clone();
    mismatch.svids[0].x509_svid_key = KeyPair::generate().unwrap().serialize_der();
    agent.state.push_once(mismatch);
    eventually("the key mismatch rejected", || {
        events.count("rejected") == 3
    })
    .await;

    // A garbage federated bundle: nothing of the update is installed.
    let (mut bad_bundle, other_leaf) = response(&pki, WEB);
    bad_bundle
        .federated_bundles
        .insert("spiffe://other.org".into(), b"\x30\x82\xff".to_vec());
    agent.state.push_once(bad_bundle);
    eventually("the bad bundle rejected", || events.count("rejected") == 4).await;

    // The agent sends no SVID.
    agent.state.push_once(proto::X509SvidResponse::default());
    eventually("the empty update rejected", || {
        events.count("rejected") == 5
    })
    .await;

    // X509-SVID: the trust domain's own ID as the SVID (a leaf needs a path).
    let (bare, _) = response(&pki, "spiffe://example.org");
    agent.state.push_once(bare);
    eventually("the path-less SVID rejected", || {
        events.count("rejected") == 6
    })
    .await;

    // Issued by an intermediate whose SPIFFE ID has a path.
    let signer = intermediate(&pki.example, "spiffe://example.org/ca");
    let (leaf_der, key) = leaf(&signer, WEB);
    let mut pathed = resp.clone();
    pathed.svids[0].x509_svid = [leaf_der, signer.der.clone()].concat();
    pathed.svids[0].x509_svid_key = key;
    agent.state.push_once(pathed);
    eventually("the SVID of a signing ID with a path rejected", || {
        events.count("rejected") == 7
    })
    .await;

    assert_eq!(
        leaf_of(&store),
        Some(good.clone()),
        "the previous identity keeps serving"
    );
    assert_ne!(leaf_of(&store), Some(other_leaf));
    assert_eq!(store.spiffe_id().as_deref(), Some(WEB));
    assert_eq!(store.trust_bundles().trust_domains().count(), 2);
    assert_eq!(events.count("installed"), 1);
    assert_eq!(
        events.count("disconnected"),
        0,
        "a bad update does not end the stream"
    );
    let all = events.all();
    assert!(all[1].contains("svid"), "{all:?}");
    assert!(all[3].contains("key"), "{all:?}");
    assert!(all[4].contains("other.org"), "{all:?}");
    assert!(
        all[6].contains("`spiffe://example.org` has no path"),
        "{all:?}"
    );
    assert!(
        all[7].contains("`spiffe://example.org/ca` has a path"),
        "{all:?}"
    );

    // The stream is still good: the next valid update is installed.
    let (next, next_leaf) = response(&pki, WEB);
    agent.state.push(next);
    eventually("the next good update", || {
        leaf_of(&store) == Some(next_leaf.clone())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn the_server_refuses_a_request_without_the_security_header() {
    let pki = pki();
    let agent = Agent::start("hdr");
    agent.state.push(response(&pki, WEB).0);

    for header in [None, Some("false")] {
        let io = UnixStream::connect(agent.socket()).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::post("http://localhost/SpiffeWorkloadAPI/FetchX509SVID")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(value) = header {
            req = req.header("workload.spiffe.io", value);
        }
        let req = req
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap();
        let status = headers
            .get("grpc-status")
            .or_else(|| body.trailers().and_then(|t| t.get("grpc-status")))
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(status.as_deref(), Some("3"), "InvalidArgument");
        assert!(body.to_bytes().is_empty(), "no svid without the header");
    }
    assert_eq!(agent.state.refused.load(Ordering::SeqCst), 2);
    assert_eq!(agent.state.calls.load(Ordering::SeqCst), 0);
    // The client sends the header.
    workload_api::fetch_once(agent.socket()).await.unwrap();
    assert_eq!(agent.state.refused.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn grpc_errors_and_bad_sockets_are_reported() {
    let agent = Agent::start("deny");
    agent.state.deny.store(true, Ordering::SeqCst);
    match workload_api::fetch_once(agent.socket()).await {
        Err(WorkloadApiError::Status { code: 7, message }) => {
            assert_eq!(message, "no identity issued")
        }
        other => panic!("expected permission denied, got {other:?}"),
    }

    // Nothing listening.
    let dir = TempDir::new("none");
    let err = workload_api::fetch_once(dir.socket()).await.unwrap_err();
    assert!(matches!(err, WorkloadApiError::Connect { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot connect to the workload api"),
        "{err}"
    );

    // Socket addresses.
    assert_eq!(
        workload_api::parse_socket("unix:///run/agent.sock").unwrap(),
        Path::new("/run/agent.sock")
    );
    assert_eq!(
        workload_api::parse_socket("unix:/run/agent.sock").unwrap(),
        Path::new("/run/agent.sock")
    );
    assert_eq!(
        workload_api::parse_socket("/run/agent.sock").unwrap(),
        Path::new("/run/agent.sock")
    );
    assert_eq!(
        workload_api::parse_socket("agent.sock").unwrap(),
        Path::new("agent.sock")
    );
    for bad in [
        "",
        "tcp://127.0.0.1:8081",
        "unix://host/agent.sock",
        "unix:agent.sock",
        "unix://",
    ] {
        assert!(
            matches!(
                workload_api::parse_socket(bad),
                Err(WorkloadApiError::InvalidSocket(_))
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn der_lists_are_split_and_checked() {
    let pki = pki();
    let mut two = pki.example.der.clone();
    two.extend_from_slice(&pki.partner.der);
    let certs = workload_api::split_der_certificates(&two).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[1].as_ref(), pki.partner.der.as_slice());
    assert!(workload_api::split_der_certificates(&[])
        .unwrap()
        .is_empty());
    for bad in [
        &two[..two.len() - 1],            // truncated
        &two[..1],                        // a lone tag
        &[0x31, 0x00][..],                // not a sequence
        &[0x30, 0x80, 0x00, 0x00][..],    // indefinite length
        &[0x30, 0x85, 1, 1, 1, 1, 1][..], // a length of five bytes
        &[0x30, 0x00][..],                // a sequence that is no certificate
    ] {
        assert!(
            workload_api::split_der_certificates(bad).is_err(),
            "{bad:02x?}"
        );
    }
}

// ---------------------------------------------------------------- raw server

/// A raw HTTP/2 server that answers one call with `chunks` as DATA frames,
/// then the trailers `grpc-status: 14`.
async fn raw_agent(dir: &TempDir, chunks: Vec<Bytes>) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(dir.socket()).unwrap();
    tokio::spawn(async move {
        let Ok((io, _)) = listener.accept().await else {
            return;
        };
        let chunks = Arc::new(chunks);
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let chunks = chunks.clone();
            async move {
                assert_eq!(req.headers()["workload.spiffe.io"], "true");
                assert_eq!(req.uri().path(), "/SpiffeWorkloadAPI/FetchX509SVID");
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
                tokio::spawn(async move {
                    for chunk in chunks.iter() {
                        let _ = tx.send(Ok(Frame::data(chunk.clone()))).await;
                        // Separate DATA frames.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "14".parse().unwrap());
                    trailers.insert("grpc-message", "agent%20restarting".parse().unwrap());
                    let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                });
                let resp = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(StreamBody::new(ReceiverStream::new(rx)))
                    .unwrap();
                Ok::<_, Infallible>(resp)
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), svc)
            .await;
    })
}

fn frame(msg: &proto::X509SvidResponse) -> Vec<u8> {
    let body = prost::Message::encode_to_vec(msg);
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn frames_are_reassembled_across_and_within_chunks() {
    let pki = pki();
    let (a, _) = response(&pki, "spiffe://example.org/a");
    let (b, _) = response(&pki, "spiffe://example.org/b");
    let (mut c, c_leaf) = response(&pki, "spiffe://example.org/c");
    // A bare trust domain as the federated key is accepted too, and a large
    // bundle spans several HTTP/2 DATA frames.
    c.federated_bundles.clear();
    let mut big = Vec::new();
    for _ in 0..40 {
        big.extend_from_slice(&pki.partner.der);
    }
    c.federated_bundles.insert("partner.org".into(), big);

    // a and b in one chunk; c cut into a 3-byte head, a middle and a tail.
    let mut ab = frame(&a);
    ab.extend_from_slice(&frame(&b));
    let c = frame(&c);
    assert!(c.len() > 16 * 1024);
    let chunks = vec![
        Bytes::from(ab),
        Bytes::copy_from_slice(&c[..3]),
        Bytes::copy_from_slice(&c[3..100]),
        Bytes::copy_from_slice(&c[100..]),
    ];
    let dir = TempDir::new("raw");
    let server = raw_agent(&dir, chunks).await;

    let store = IdentityStore::new();
    let events = Events::default();
    let task = tokio::spawn(
        client(&dir.socket())
            .with_backoff(Duration::from_secs(5), Duration::from_secs(5))
            .run(store.clone(), events.callback()),
    );
    eventually("the end of the raw stream", || {
        events.count("disconnected") == 1
    })
    .await;
    assert_eq!(
        events.all(),
        [
            "installed spiffe://example.org/a",
            "installed spiffe://example.org/b",
            "installed spiffe://example.org/c",
            "disconnected the workload api returned grpc status 14 (unavailable): agent restarting",
        ]
    );
    assert_eq!(leaf_of(&store), Some(c_leaf));
    assert_eq!(
        store.trust_bundles().roots("partner.org").unwrap().len(),
        40
    );
    task.abort();
    server.abort();
}

// ---------------------------------------------------------------- through the proxy

use crate::support;

/// The proxy takes its identity from the Workload API: not ready and
/// forwarding nothing until the agent sends one, then serving mTLS with it.
#[tokio::test]
async fn the_proxy_serves_mtls_with_the_agents_identity() {
    let pki = pki();
    let agent = Agent::start("proxy");
    let dir = support::TempDir::new("workload-proxy");
    let (app, _) = support::echo_server().await;
    let policy = r#"
server web { port 8443  protocol http  route all { path prefix "/" } }
allow everyone { to web.all  from any }
"#;
    std::fs::write(dir.path("policy.bundle"), support::compile(policy)).unwrap();
    let toml = format!(
        "[policy]\nbundle = \"policy.bundle\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[identity]\nworkload-api = \"unix://{}\"\n[[inbound]]\nlisten = \"127.0.0.1:0\"\nport = 8443\napp = \"{app}\"\ntls = \"mtls\"\n",
        agent.socket().display()
    );
    let proxy = support::start_proxy(&dir, &toml).await;
    let (status, body) = support::admin_get(proxy.admin_addr(), "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("an SVID"), "{body}");

    let roots = vec![rustls_pki_types::CertificateDer::from(
        pki.example.der.clone(),
    )];
    let config = support::certs::client_config_roots(&roots, None, &["http/1.1"]);
    // Not ready: the connection is closed before any handshake.
    assert!(
        support::certs::connect(proxy.inbound_addrs()[0], config.clone())
            .await
            .is_err()
    );

    let (resp, leaf) = response(&pki, WEB);
    agent.state.push(resp);
    let mut ready = false;
    for _ in 0..100 {
        if support::admin_get(proxy.admin_addr(), "/ready").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "ready once the agent sent an identity");
    let tls = support::certs::connect(proxy.inbound_addrs()[0], config)
        .await
        .unwrap();
    assert_eq!(
        support::certs::server_leaf(&tls).unwrap().as_ref(),
        leaf.as_slice()
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/hello")
        .header("host", "web")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, metrics) = support::admin_get(proxy.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains("sluice_identity_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    proxy.shutdown().await;
}
