//! mTLS origination on the outbound side: a backend with `identity` is
//! reached over TLS 1.3 presenting the proxy's SVID, and only a server
//! presenting that SPIFFE ID is accepted. Upstreams are rustls servers
//! (tokio-rustls + hyper) on 127.0.0.1 requiring a client certificate.

use crate::support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::certs::{Ca, Svid};
use support::*;
use tokio::net::TcpStream;

const CLIENT_ID: &str = "spiffe://example.org/ns/app/sa/client";
const SERVER_ID: &str = "spiffe://example.org/ns/pay/sa/server";

/// A TLS 1.3 upstream presenting `svid`, requiring a client certificate
/// that chains to one of `client_roots`.
struct TlsUpstream {
    addr: SocketAddr,
    /// Handshakes that completed.
    handshakes: Arc<AtomicUsize>,
    /// HTTP requests received.
    requests: Arc<AtomicUsize>,
    /// The leaf certificate each client presented.
    clients: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

async fn tls_upstream(name: &'static str, svid: &Svid, client_roots: &[&Ca]) -> TlsUpstream {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in client_roots {
        roots.add(ca.root.clone()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(svid.chain.clone(), svid.key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let handshakes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let clients = Arc::new(Mutex::new(Vec::new()));
    let counters = (handshakes.clone(), requests.clone(), clients.clone());
    let addr = local_server(move |tcp| {
        let (acceptor, (handshakes, requests, clients)) = (acceptor.clone(), counters.clone());
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            handshakes.fetch_add(1, Ordering::SeqCst);
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first().cloned());
            if let Some(leaf) = leaf {
                clients.lock().unwrap().push(leaf.into_owned());
            }
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"secure\n")));
                    r.headers_mut().insert("x-backend", name.parse().unwrap());
                    r.headers_mut().insert(
                        "x-seen-version",
                        format!("{:?}", req.version()).parse().unwrap(),
                    );
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
    TlsUpstream {
        addr,
        handshakes,
        requests,
        clients,
    }
}

/// The URI SANs of a certificate.
fn uri_sans(der: &CertificateDer<'_>) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// An explicit outbound listener with the SVID `proxy.pem`/`proxy.key`
/// trusting `example.org.pem`, policy in `p.bundle`.
const TOML: &str = r#"
[policy]
bundle = "p.bundle"
watch = false
[admin]
listen = "127.0.0.1:0"
[[outbound]]
listen = "127.0.0.1:0"
[identity]
cert = "proxy.pem"
key = "proxy.key"
trust-bundles = { "example.org" = "example.org.pem" }
[limits]
connect-timeout-ms = 3000
drain-timeout-ms = 2000
"#;

/// One HTTP/1.1 request over a new connection to the outbound listener.
async fn get(out: SocketAddr, authority: &str, path: &str) -> Seen {
    let stream = TcpStream::connect(out).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", authority)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    collect(resp).await
}

/// A policy of services `NAME` (authority `NAME.prod`), each with one
/// backend at `addr` that must present the SPIFFE ID `id`.
fn identity_policy(services: &[(&str, SocketAddr, &str)]) -> String {
    let mut policy = String::from("\nmesh { trust-domain \"example.org\" }\n");
    for (name, addr, id) in services {
        policy += &format!(
            r#"service {name} {{
  authority "{name}.prod"
  backend b {{ endpoint {addr}  identity "{id}" }}
  route all {{ to b }}
}}
"#
        );
    }
    policy
}

/// A request for `authority` through `out` is answered `502 connect`, and
/// the proxy neither finished a handshake with `up` nor sent it a request.
async fn assert_connect_refused(out: SocketAddr, authority: &str, path: &str, up: &TlsUpstream) {
    let r = get(out, authority, path).await;
    assert_eq!(r.status_and_error(), (502, "connect"), "{authority}: {r:?}");
    assert_eq!(up.requests.load(Ordering::SeqCst), 0, "{authority}");
    assert_eq!(
        up.handshakes.load(Ordering::SeqCst),
        0,
        "{authority}: the proxy finished a handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_origination_checks_the_server_identity() {
    let dir = TempDir::new("outbound-mtls");
    let ca = Ca::new("example.org");
    let stranger = Ca::new("stranger.org");
    let proxy_svid = ca.intermediate().svid(CLIENT_ID);
    proxy_svid.write(&dir.0, "proxy");
    ca.write_bundle(&dir.0, "example.org");

    let good = tls_upstream("good", &ca.svid(SERVER_ID), &[&ca]).await;
    let impostor = tls_upstream(
        "impostor",
        &ca.svid("spiffe://example.org/ns/pay/sa/other"),
        &[&ca],
    )
    .await;
    // The right ID, from a CA the proxy does not trust.
    let untrusted = tls_upstream("untrusted", &stranger.svid(SERVER_ID), &[&ca]).await;

    let policy = identity_policy(&[
        ("pay", good.addr, SERVER_ID),
        ("impostor", impostor.addr, SERVER_ID),
        ("untrusted", untrusted.addr, SERVER_ID),
    ]);
    std::fs::write(dir.path("p.bundle"), compile(&policy)).unwrap();
    let proxy = start_proxy(&dir, TOML).await;
    let out = proxy.outbound_addrs()[0];

    // The expected server: 200, over TLS presenting the proxy's SVID.
    for _ in 0..3 {
        let r = get(out, "pay.prod", "/charge").await;
        assert_eq!((r.status, r.header("x-backend")), (200, "good"), "{r:?}");
        assert_eq!(r.body, "secure\n");
    }
    // HTTP/2 from the application: HTTP/2 inside the TLS connection too.
    {
        let mut h2 = h2c_connect(out).await;
        let req = Request::builder()
            .uri("http://pay.prod/h2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = collect(h2.send_request(req).await.unwrap()).await;
        assert_eq!((r.status, r.header("x-backend")), (200, "good"), "{r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
    }
    assert_eq!(good.requests.load(Ordering::SeqCst), 4);
    let clients = good.clients.lock().unwrap().clone();
    assert!(!clients.is_empty());
    for leaf in &clients {
        assert_eq!(leaf, &proxy_svid.chain[0], "the proxy presented its SVID");
        assert_eq!(uri_sans(leaf), vec![CLIENT_ID.to_owned()]);
    }

    // A server with another SPIFFE ID, or one the trust bundle does not
    // vouch for: 502 connect, and no HTTP request ever reaches it.
    for (authority, up) in [("impostor.prod", &impostor), ("untrusted.prod", &untrusted)] {
        assert_connect_refused(out, authority, "/charge", up).await;
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_svids_must_follow_the_x509_svid_path_rules() {
    let dir = TempDir::new("outbound-svid-paths");
    let ca = Ca::new("example.org");
    ca.svid(CLIENT_ID).write(&dir.0, "proxy");
    ca.write_bundle(&dir.0, "example.org");
    const BARE: &str = "spiffe://example.org";
    let good = tls_upstream("good", &ca.svid(SERVER_ID), &[&ca]).await;
    // The trust domain's own ID as a server SVID: a leaf needs a path.
    let bare = tls_upstream("bare", &ca.svid(BARE), &[&ca]).await;
    // Issued by an intermediate whose SPIFFE ID has a path.
    let signer = ca.intermediate_with_id("spiffe://example.org/ca/issuer");
    let pathed = tls_upstream("pathed", &signer.svid(SERVER_ID), &[&ca]).await;
    let policy = identity_policy(&[
        ("good", good.addr, SERVER_ID),
        ("bare", bare.addr, BARE),
        ("pathed", pathed.addr, SERVER_ID),
    ]);
    std::fs::write(dir.path("p.bundle"), compile(&policy)).unwrap();
    let proxy = start_proxy(&dir, TOML).await;
    let out = proxy.outbound_addrs()[0];

    let r = get(out, "good.prod", "/x").await;
    assert_eq!((r.status, r.header("x-backend")), (200, "good"), "{r:?}");
    for (authority, up) in [("bare.prod", &bare), ("pathed.prod", &pathed)] {
        assert_connect_refused(out, authority, "/x", up).await;
    }
    proxy.shutdown().await;
}
