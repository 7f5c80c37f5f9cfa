//! mTLS end to end through the proxy: real TLS 1.3 handshakes on
//! 127.0.0.1 with SVIDs made by rcgen.

use crate::support;

use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::certs::{self, Ca, Flaw, Svid};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
mesh { trust-domain "example.org" }

server web {
  port 8443
  protocol http
  route api   { path prefix "/api" }
  route authn { path prefix "/authn" }
  route open  { path prefix "/open" }
}

allow frontend { to web.api    from identity "spiffe://example.org/ns/shop/sa/frontend" }
allow members  { to web.authn  from authenticated }
allow anyone   { to web.open   from any }
"#;

const FRONTEND: &str = "spiffe://example.org/ns/shop/sa/frontend";

struct Mesh {
    _dir: TempDir,
    ours: Ca,
    partner: Ca,
    proxy: sluice_proxy::Proxy,
    server_cert: (std::path::PathBuf, std::path::PathBuf),
}

async fn mesh(tls: &str) -> Mesh {
    let dir = TempDir::new(&format!("mtls-{tls}"));
    let (app, _) = echo_server().await;
    let ours = Ca::new("example.org");
    let partner = Ca::new("partner.org");
    let server = ours
        .intermediate()
        .svid("spiffe://example.org/ns/default/sa/web");
    let server_cert = server.write(&dir.0, "web");
    ours.write_bundle(&dir.0, "example.org");
    partner.write_bundle(&dir.0, "partner.org");
    std::fs::write(dir.path("policy.bundle"), compile(POLICY)).unwrap();
    let toml = format!(
        r#"
[policy]
bundle = "policy.bundle"
[admin]
listen = "127.0.0.1:0"
[identity]
cert = "web.pem"
key = "web.key"
trust-bundles = {{ "example.org" = "example.org.pem", "partner.org" = "partner.org.pem" }}
watch-interval-ms = 50
[[inbound]]
listen = "127.0.0.1:0"
port = 8443
app = "{app}"
tls = "{tls}"
"#
    );
    let proxy = start_proxy(&dir, &toml).await;
    Mesh {
        _dir: dir,
        ours,
        partner,
        proxy,
        server_cert,
    }
}

impl Mesh {
    fn addr(&self) -> SocketAddr {
        self.proxy.inbound_addrs()[0]
    }

    /// One HTTP/1.1 (or HTTP/2 with `h2`) GET over TLS presenting `client`.
    async fn get(&self, client: Option<&Svid>, path: &str, h2: bool) -> Result<Seen, String> {
        let alpn: &[&str] = if h2 { &["h2"] } else { &["http/1.1"] };
        let config = certs::client_config(&self.ours, client, alpn);
        let tls = certs::connect(self.addr(), config)
            .await
            .map_err(|e| e.to_string())?;
        let req = http::Request::builder()
            .uri(format!("https://web.example.org{path}"))
            .header("host", "web.example.org")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(tls),
            )
            .await
            .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| e.to_string())?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| e.to_string())?
        };
        Ok(collect(resp).await)
    }

    /// Whether a client presenting `client` is refused during the
    /// handshake. In TLS 1.3 the server checks the client certificate after
    /// the client has finished, so the refusal shows on the first read.
    async fn refused(&self, client: &Svid) -> bool {
        let config = certs::client_config(&self.ours, Some(client), &["http/1.1"]);
        let Ok(mut tls) = certs::connect(self.addr(), config).await else {
            return true;
        };
        if tls
            .write_all(b"GET /open HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .is_err()
        {
            return true;
        }
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        matches!(read, Ok(Err(_))) || (matches!(read, Ok(Ok(_))) && out.is_empty())
    }
}

#[tokio::test]
async fn identities_are_verified_and_passed_to_the_application() {
    let m = mesh("mtls").await;
    let frontend = m.ours.intermediate().svid(FRONTEND);
    let other = m.ours.svid("spiffe://example.org/ns/shop/sa/other");
    let partner = m.partner.svid("spiffe://partner.org/ns/billing/sa/api");

    let r = m.get(Some(&frontend), "/api/orders", false).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-identity"), FRONTEND);

    let r = m.get(Some(&frontend), "/api/h2", true).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
    assert_eq!(r.header("x-seen-identity"), FRONTEND);

    assert_eq!(
        m.get(Some(&other), "/api/orders", false)
            .await
            .unwrap()
            .status,
        403
    );
    let r = m.get(Some(&other), "/authn/x", false).await.unwrap();
    assert_eq!(
        (r.status, r.header("x-seen-identity")),
        (200, "spiffe://example.org/ns/shop/sa/other")
    );

    // A federated trust domain's SVID, verified against its own bundle.
    let r = m.get(Some(&partner), "/authn/x", false).await.unwrap();
    assert_eq!(
        (r.status, r.header("x-seen-identity")),
        (200, "spiffe://partner.org/ns/billing/sa/api")
    );

    // No client certificate: unauthenticated, not refused.
    let r = m.get(None, "/open/x", false).await.unwrap();
    assert_eq!((r.status, r.header("x-seen-identity")), (200, ""));
    assert_eq!(m.get(None, "/authn/x", false).await.unwrap().status, 403);
    assert_eq!(m.get(None, "/api/x", false).await.unwrap().status, 403);

    let (_, metrics) = admin_get(m.proxy.admin_addr(), "/metrics").await;
    assert!(metrics.contains("sluice_svid_expiry_seconds "), "{metrics}");
    m.proxy.shutdown().await;
}

#[tokio::test]
async fn invalid_client_certificates_fail_the_handshake() {
    let m = mesh("mtls").await;
    let cases: Vec<(&str, Svid)> = vec![
        (
            "partner CA minting our trust domain",
            m.partner.svid(FRONTEND),
        ),
        ("expired", m.ours.svid_with(FRONTEND, Flaw::Expired)),
        ("two URI SANs", m.ours.svid_with(FRONTEND, Flaw::TwoUriSans)),
        (
            "non-SPIFFE URI SAN",
            m.ours.svid_with(FRONTEND, Flaw::NonSpiffeUri),
        ),
        ("CA certificate as a leaf", m.ours.intermediate().as_svid()),
        (
            "no digitalSignature",
            m.ours.svid_with(FRONTEND, Flaw::NoDigitalSignature),
        ),
        (
            "no clientAuth",
            m.ours.svid_with(FRONTEND, Flaw::NoClientAuth),
        ),
        (
            "unknown trust domain",
            Ca::new("stranger.org").svid("spiffe://stranger.org/ns/a/sa/b"),
        ),
        // X509-SVID: a leaf's ID needs a path, a signing certificate's has none.
        (
            "leaf ID without a path",
            m.ours.svid("spiffe://example.org"),
        ),
        (
            "signing certificate ID with a path",
            m.ours
                .intermediate_with_id("spiffe://example.org/ca")
                .svid(FRONTEND),
        ),
    ];
    for (what, svid) in &cases {
        assert!(m.refused(svid).await, "{what}: the handshake should fail");
    }
    // The same proxy still serves a valid client.
    let ok = m.ours.svid(FRONTEND);
    assert!(!m.refused(&ok).await);
    let (_, metrics) = admin_get(m.proxy.admin_addr(), "/metrics").await;
    let refused = format!(
        "sluice_connections_refused_total{{reason=\"handshake\"}} {}",
        cases.len()
    );
    assert!(metrics.contains(&refused), "{metrics}");
    m.proxy.shutdown().await;
}

#[tokio::test]
async fn permissive_listeners_take_tls_and_plaintext() {
    let m = mesh("permissive").await;
    let frontend = m.ours.svid(FRONTEND);
    let r = m.get(Some(&frontend), "/api/x", false).await.unwrap();
    assert_eq!((r.status, r.header("x-seen-identity")), (200, FRONTEND));
    let plain = http1(m.addr(), "GET", "/open/x", &[]).await;
    assert_eq!((plain.status, plain.header("x-seen-identity")), (200, ""));
    assert_eq!(http1(m.addr(), "GET", "/api/x", &[]).await.status, 403);
    m.proxy.shutdown().await;
}

#[tokio::test]
async fn mtls_listeners_refuse_plaintext() {
    let m = mesh("mtls").await;
    let out = raw_exchange(
        m.addr(),
        b"GET /open/x HTTP/1.1\r\nhost: a\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(!out.contains("200"), "{out}");
    m.proxy.shutdown().await;
}

#[tokio::test]
async fn rotated_server_certificates_are_served_without_restart() {
    let m = mesh("mtls").await;
    let config: Arc<rustls::ClientConfig> = certs::client_config(&m.ours, None, &["http/1.1"]);
    let before =
        certs::server_leaf(&certs::connect(m.addr(), config.clone()).await.unwrap()).unwrap();
    let rotated = m.ours.svid("spiffe://example.org/ns/default/sa/web");
    // Key first, then certificate, each replaced atomically, as cert-manager does.
    write_atomic(&m.server_cert.1, rotated.key_pem.as_bytes());
    write_atomic(&m.server_cert.0, rotated.cert_pem.as_bytes());
    let mut after = before.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        after =
            certs::server_leaf(&certs::connect(m.addr(), config.clone()).await.unwrap()).unwrap();
        if after != before {
            break;
        }
    }
    assert_eq!(
        after, rotated.chain[0],
        "the rotated certificate is presented"
    );
    let r = m
        .get(Some(&m.ours.svid(FRONTEND)), "/api/x", false)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    m.proxy.shutdown().await;
}
