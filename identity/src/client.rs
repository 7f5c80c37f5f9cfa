//! mTLS origination: the rustls client configuration the outbound proxy uses to
//! connect to a backend that declares `identity "spiffe://…"`.
//!
//! The server must present a valid X.509-SVID (serverAuth) chaining to the
//! bundle of its trust domain, naming exactly the declared SPIFFE ID; the
//! proxy presents its own current SVID. Credentials and bundles are read from
//! the [`IdentityStore`] at every handshake, so rotation needs no new config.

use super::{verify_svid, CertificateDer, IdentityStore, UnixTime, Usage};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::ServerName;
use std::fmt;
use std::sync::Arc;

/// The placeholder server name to pass to the connector with a [`client_config`]:
/// `spiffe.invalid`. It is neither checked nor sent (SNI is disabled).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("spiffe.invalid").expect("a valid DNS name")
}

/// A TLS 1.3 client config that presents `store`'s current SVID (nothing if it
/// has none) and accepts only a server SVID (serverAuth) that chains to the
/// store's current bundle of its trust domain and names exactly `expected_id`.
///
/// The server name given to the connector is ignored and SNI is not sent (use
/// [`server_name`]). `alpn` is offered as is. Session resumption is disabled,
/// so every connection verifies the server against the current bundles.
pub fn client_config(
    store: &Arc<IdentityStore>,
    expected_id: &str,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let provider = super::svid::provider().clone();
    let verifier = SvidServerVerifier {
        store: store.clone(),
        expected_id: expected_id.to_owned(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(CurrentClientCert {
            store: store.clone(),
        }));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // A resumed session skips server verification: a bundle removed since
    // would still admit the server.
    config.resumption = Resumption::disabled();
    config.enable_sni = false;
    Arc::new(config)
}

/// The server presented a valid SVID, but not of the expected SPIFFE ID.
/// `Debug` prints the message: rustls shows a verifier's error with `Debug`.
struct UnexpectedServerId {
    expected: String,
    presented: String,
}

impl fmt::Display for UnexpectedServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server presented the SVID of `{}`, expected `{}`",
            self.presented, self.expected
        )
    }
}

impl fmt::Debug for UnexpectedServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for UnexpectedServerId {}

fn invalid_certificate(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// Verifies the server's SVID against the store's current bundles and the expected ID.
#[derive(Debug)]
struct SvidServerVerifier {
    store: Arc<IdentityStore>,
    expected_id: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SvidServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(CertificateDer::from(end_entity.as_ref()));
        chain.extend(
            intermediates
                .iter()
                .map(|c| CertificateDer::from(c.as_ref())),
        );
        let presented = verify_svid(&chain, &self.store.trust_bundles(), now, Usage::Server)
            .map_err(invalid_certificate)?;
        if presented != self.expected_id {
            return Err(invalid_certificate(UnexpectedServerId {
                expected: self.expected_id.clone(),
                presented,
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "TLS 1.2 is not offered for SVID connections".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Presents the store's current credentials, if any.
#[derive(Debug)]
struct CurrentClientCert {
    store: Arc<IdentityStore>,
}

impl ResolvesClientCert for CurrentClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.store.credentials().map(|c| c.certified_key())
    }

    /// Credentials may appear after the config is built: always ready to present.
    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_certs::{Ca, Flaw, Svid};
    use crate::{peer_identity, Credentials, TrustBundles};
    use rustls::ServerConfig;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const SERVER: &str = "spiffe://a.org/ns/payments/sa/api";
    const CLIENT: &str = "spiffe://a.org/ns/mesh/sa/proxy";

    fn creds(svid: &Svid) -> Credentials {
        Credentials::from_der(svid.chain.clone(), svid.key()).unwrap()
    }

    fn bundles(cas: &[&Ca]) -> TrustBundles {
        let mut b = TrustBundles::new();
        for ca in cas {
            b.insert(&ca.trust_domain, ca.bundle()).unwrap();
        }
        b
    }

    /// A store with `svid` (if any) trusting `cas`.
    fn store(svid: Option<&Svid>, cas: &[&Ca]) -> Arc<IdentityStore> {
        let store = IdentityStore::new();
        if let Some(svid) = svid {
            store.set_credentials(creds(svid));
        }
        store.set_trust_bundles(bundles(cas));
        store
    }

    /// The proxy's inbound server config presenting `svid`, trusting `cas`.
    fn svid_server(svid: &Svid, cas: &[&Ca]) -> Arc<ServerConfig> {
        store(Some(svid), cas).server_config()
    }

    /// A plain TLS 1.3 server presenting any certificate, client auth off.
    fn plain_server(cert: &Svid) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(crate::svid::provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(cert.chain.clone(), cert.key())
            .unwrap();
        Arc::new(config)
    }

    /// What the server saw of a successful handshake.
    #[derive(Debug)]
    struct Seen {
        client_id: Option<String>,
        client_leaf: Option<CertificateDer<'static>>,
        alpn: Option<Vec<u8>>,
    }

    /// One connection over 127.0.0.1: the server's view, or the client's error.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<Seen, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .ok()?;
            let conn = tls.get_ref().1;
            let seen = Seen {
                client_id: peer_identity(conn),
                client_leaf: conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned()),
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            };
            tls.write_all(b"ok").await.unwrap();
            tls.shutdown().await.unwrap();
            Some(seen)
        };
        let connect = async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(server_name(), tcp)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
            assert_eq!(buf, b"ok");
            Ok::<_, String>(())
        };
        let both = async { tokio::join!(serve, connect) };
        let (seen, client) = tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("handshake timed out");
        match client {
            Ok(()) => Ok(seen.expect("the client succeeded but the server failed")),
            Err(e) => {
                assert!(seen.is_none(), "the server did not notice the failure");
                Err(e)
            }
        }
    }

    #[test]
    fn server_name_is_a_dns_placeholder() {
        assert_eq!(server_name().to_str(), "spiffe.invalid");
    }

    #[tokio::test]
    async fn expected_server_id_is_accepted() {
        let a = Ca::new("a.org");
        let ours = store(Some(&a.svid(CLIENT)), &[&a]);
        let config = client_config(&ours, SERVER, &[b"h2", b"http/1.1"]);
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let seen = handshake(svid_server(&a.svid(SERVER), &[&a]), config.clone())
            .await
            .unwrap();
        assert_eq!(seen.client_id.as_deref(), Some(CLIENT));
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
        // Intermediates in the server's chain.
        let inter = a.intermediate().intermediate();
        let seen = handshake(svid_server(&inter.svid(SERVER), &[&a]), config)
            .await
            .unwrap();
        assert_eq!(seen.client_id.as_deref(), Some(CLIENT));
        // Another trust domain, when its bundle is held.
        let partner = Ca::new("partner.net");
        let theirs = "spiffe://partner.net/ns/x/sa/y";
        let ours = store(Some(&a.svid(CLIENT)), &[&a, &partner]);
        let server = svid_server(&partner.svid(theirs), &[&a]);
        let seen = handshake(server, client_config(&ours, theirs, &[]))
            .await
            .unwrap();
        assert_eq!(seen.client_id.as_deref(), Some(CLIENT));
        assert_eq!(seen.alpn, None);
    }

    #[tokio::test]
    async fn another_id_is_rejected_naming_both() {
        let a = Ca::new("a.org");
        let ours = store(Some(&a.svid(CLIENT)), &[&a]);
        let other = "spiffe://a.org/ns/payments/sa/api-canary";
        let e = handshake(
            svid_server(&a.svid(other), &[&a]),
            client_config(&ours, SERVER, &[]),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains(&format!(
                "the server presented the SVID of `{other}`, expected `{SERVER}`"
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn svid_from_another_ca_is_rejected() {
        let a = Ca::new("a.org");
        let partner = Ca::new("partner.net");
        let ours = store(Some(&a.svid(CLIENT)), &[&a, &partner]);
        let config = client_config(&ours, SERVER, &[]);
        // partner.net's CA issuing an a.org ID: a.org's bundle decides.
        let e = handshake(svid_server(&partner.svid(SERVER), &[&a]), config.clone())
            .await
            .unwrap_err();
        assert!(
            e.contains(&format!(
                "the SVID of `{SERVER}` does not verify against the trust bundle of `a.org`"
            )),
            "{e}"
        );
        // No bundle at all for the ID's trust domain.
        let c = Ca::new("c.org");
        let e = handshake(
            svid_server(&c.svid("spiffe://c.org/x"), &[&a]),
            client_config(&ours, "spiffe://c.org/x", &[]),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("no trust bundle for trust domain `c.org`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn non_svid_server_cert_is_rejected() {
        let a = Ca::new("a.org");
        let ours = store(Some(&a.svid(CLIENT)), &[&a]);
        let dns_only = a.svid_with(SERVER, Flaw::NoUriSan);
        let e = handshake(plain_server(&dns_only), client_config(&ours, SERVER, &[]))
            .await
            .unwrap_err();
        assert!(e.contains("exactly one URI SAN, this one has 0"), "{e}");
        let no_server_auth = a.svid_with(SERVER, Flaw::NoServerAuth);
        let e = handshake(
            plain_server(&no_server_auth),
            client_config(&ours, SERVER, &[]),
        )
        .await
        .unwrap_err();
        assert!(e.contains("lacks the serverAuth extended key usage"), "{e}");
    }

    #[tokio::test]
    async fn expired_server_svid_is_rejected() {
        let a = Ca::new("a.org");
        let ours = store(Some(&a.svid(CLIENT)), &[&a]);
        let expired = a.svid_with(SERVER, Flaw::Expired);
        let e = handshake(plain_server(&expired), client_config(&ours, SERVER, &[]))
            .await
            .unwrap_err();
        assert!(
            e.contains(&format!("the SVID of `{SERVER}` has expired")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn rotation_needs_no_new_config() {
        let a = Ca::new("a.org");
        let b = Ca::new("b.org");
        let first = a.svid(CLIENT);
        let ours = store(Some(&first), &[&a]);
        let config = client_config(&ours, SERVER, &[]);
        let server = svid_server(&a.svid(SERVER), &[&a, &b]);

        let seen = handshake(server.clone(), config.clone()).await.unwrap();
        assert_eq!(seen.client_leaf.as_ref(), Some(&first.chain[0]));
        assert_eq!(seen.client_id.as_deref(), Some(CLIENT));

        let next_id = "spiffe://b.org/ns/mesh/sa/proxy";
        let next = b.svid(next_id);
        ours.set_credentials(creds(&next));
        let seen = handshake(server.clone(), config.clone()).await.unwrap();
        assert_eq!(seen.client_leaf.as_ref(), Some(&next.chain[0]));
        assert_eq!(seen.client_id.as_deref(), Some(next_id));

        // Bundles are read at every handshake too.
        ours.set_trust_bundles(bundles(&[&b]));
        let e = handshake(server.clone(), config.clone()).await.unwrap_err();
        assert!(
            e.contains("no trust bundle for trust domain `a.org`"),
            "{e}"
        );
        ours.set_trust_bundles(bundles(&[&a]));
        assert!(handshake(server, config).await.is_ok());
    }

    #[tokio::test]
    async fn no_credentials_presents_nothing() {
        let a = Ca::new("a.org");
        let ours = store(None, &[&a]);
        let config = client_config(&ours, SERVER, &[]);
        let server = svid_server(&a.svid(SERVER), &[&a]);
        let seen = handshake(server.clone(), config.clone()).await.unwrap();
        assert_eq!(seen.client_id, None);
        assert_eq!(seen.client_leaf, None);
        ours.set_credentials(creds(&a.svid(CLIENT)));
        let seen = handshake(server, config).await.unwrap();
        assert_eq!(seen.client_id.as_deref(), Some(CLIENT));
    }
}
