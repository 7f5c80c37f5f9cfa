//! Test certificates made with rcgen, behind the `test-certs` feature (for
//! this crate's unit tests and the proxy's integration tests): a CA per
//! trust domain, SVIDs (valid or with one [`Flaw`]), rustls client
//! configurations presenting them, and PEM files.
//!
//! In TLS 1.3 the server checks the client certificate after the client's
//! handshake has finished: a rejected client sees the failure on its first read.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, TrustAnchor, UnixTime,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// One way an SVID breaks the X509-SVID rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// notAfter was yesterday.
    Expired,
    /// notBefore is tomorrow.
    NotYetValid,
    /// A second URI SAN, `spiffe://<td>/second`.
    TwoUriSans,
    /// The URI SAN is `https://example.org/not-spiffe` instead of the ID.
    NonSpiffeUri,
    /// A DNS SAN (`localhost`) and no URI SAN.
    NoUriSan,
    /// basicConstraints cA true (with keyCertSign).
    IsCa,
    /// keyUsage without digitalSignature (keyEncipherment only).
    NoDigitalSignature,
    /// No keyUsage extension.
    NoKeyUsage,
    /// keyUsage digitalSignature and keyCertSign.
    KeyCertSign,
    /// extendedKeyUsage serverAuth only.
    NoClientAuth,
    /// extendedKeyUsage clientAuth only.
    NoServerAuth,
    /// No extendedKeyUsage extension.
    NoExtendedKeyUsage,
}

/// A certificate authority of one trust domain (a root, or an intermediate under one).
pub struct Ca {
    /// The trust domain, e.g. `example.org`.
    pub trust_domain: String,
    /// This CA's certificate.
    pub cert: CertificateDer<'static>,
    /// This CA's certificate as PEM.
    pub pem: String,
    /// This CA's private key as PKCS#8 PEM.
    pub key_pem: String,
    /// The root at the top (this CA's certificate for a root): the trust bundle.
    pub root: CertificateDer<'static>,
    /// The root as PEM.
    pub root_pem: String,
    /// Certificates sent after a leaf it issues (intermediates, this one first).
    chain: Vec<(CertificateDer<'static>, String)>,
    issuer: Issuer<'static, KeyPair>,
}

/// An issued certificate and its key.
pub struct Svid {
    /// The SPIFFE ID it was issued for (possibly not in the certificate, per its flaw).
    pub id: String,
    /// Leaf first, then the issuing intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The chain as PEM.
    pub cert_pem: String,
    /// The private key as PKCS#8 PEM.
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl Svid {
    /// The private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Writes `DIR/NAME.pem` (chain) and `DIR/NAME.key`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn dn(org: &str, cn: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn ca_params(trust_domain: &str, name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("Sluice test", Some(name));
    params.subject_alt_names = vec![uri(&format!("spiffe://{trust_domain}"))];
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now() - DAY).into();
    params.not_after = (now() + 30 * DAY).into();
    params.use_authority_key_identifier_extension = true;
    params
}

impl Ca {
    /// A self-signed root CA for `trust_domain`, with URI SAN `spiffe://<trust_domain>`.
    pub fn new(trust_domain: &str) -> Ca {
        Ca::new_with_id(trust_domain, &format!("spiffe://{trust_domain}"))
    }

    /// [`Ca::new`] whose URI SAN is `id`.
    pub fn new_with_id(trust_domain: &str, id: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = ca_params(trust_domain, &format!("{trust_domain} root CA"));
        params.subject_alt_names = vec![uri(id)];
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        Ca {
            trust_domain: trust_domain.to_owned(),
            cert: cert.der().clone(),
            pem: cert.pem(),
            key_pem,
            root: cert.der().clone(),
            root_pem: cert.pem(),
            chain: Vec::new(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one; its SVIDs carry it in their chain.
    pub fn intermediate(&self) -> Ca {
        self.intermediate_with_id(&format!("spiffe://{}", self.trust_domain))
    }

    /// [`Ca::intermediate`] whose URI SAN is `id` (X509-SVID forbids a path
    /// in a signing certificate's SPIFFE ID).
    pub fn intermediate_with_id(&self, id: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = ca_params(
            &self.trust_domain,
            &format!("{} intermediate CA", self.trust_domain),
        );
        params.subject_alt_names = vec![uri(id)];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![(cert.der().clone(), cert.pem())];
        chain.extend(self.chain.iter().cloned());
        Ca {
            trust_domain: self.trust_domain.clone(),
            cert: cert.der().clone(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            root: self.root.clone(),
            root_pem: self.root_pem.clone(),
            chain,
            issuer: Issuer::new(params, key),
        }
    }

    /// The trust bundle: the root.
    pub fn bundle(&self) -> Vec<CertificateDer<'static>> {
        vec![self.root.clone()]
    }

    /// Writes the root to `DIR/NAME.pem` (a trust bundle file); returns its path.
    pub fn write_bundle(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.root_pem).unwrap();
        path
    }

    /// A valid SVID for `id` (clientAuth and serverAuth, one day). Any ID is
    /// accepted: a CA of trust domain B may issue an ID naming trust domain A.
    pub fn svid(&self, id: &str) -> Svid {
        self.issue(id, None)
    }

    /// An SVID for `id` with one flaw.
    pub fn svid_with(&self, id: &str, flaw: Flaw) -> Svid {
        self.issue(id, Some(flaw))
    }

    /// This CA's own certificate and key, presented as if it were a leaf.
    pub fn as_svid(&self) -> Svid {
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        let mut chain = vec![self.cert.clone()];
        let mut cert_pem = self.pem.clone();
        for (der, pem) in self.chain.iter().skip(1) {
            chain.push(der.clone());
            cert_pem.push_str(pem);
        }
        Svid {
            id: format!("spiffe://{}", self.trust_domain),
            chain,
            cert_pem,
            key_pem: self.key_pem.clone(),
            key_der: key.serialize_der(),
        }
    }

    fn issue(&self, id: &str, flaw: Option<Flaw>) -> Svid {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("Sluice test", None);
        params.subject_alt_names = vec![uri(id)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = (now() - Duration::from_secs(60)).into();
        params.not_after = (now() + DAY).into();
        params.use_authority_key_identifier_extension = true;
        match flaw {
            None => {}
            Some(Flaw::Expired) => {
                params.not_before = (now() - 2 * DAY).into();
                params.not_after = (now() - DAY).into();
            }
            Some(Flaw::NotYetValid) => {
                params.not_before = (now() + DAY).into();
                params.not_after = (now() + 2 * DAY).into();
            }
            Some(Flaw::TwoUriSans) => params
                .subject_alt_names
                .push(uri(&format!("spiffe://{}/second", self.trust_domain))),
            Some(Flaw::NonSpiffeUri) => {
                params.subject_alt_names = vec![uri("https://example.org/not-spiffe")]
            }
            Some(Flaw::NoUriSan) => {
                params.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())]
            }
            Some(Flaw::IsCa) => {
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
            }
            Some(Flaw::NoDigitalSignature) => {
                params.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
            }
            Some(Flaw::NoKeyUsage) => params.key_usages.clear(),
            Some(Flaw::KeyCertSign) => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
            Some(Flaw::NoClientAuth) => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
            }
            Some(Flaw::NoServerAuth) => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
            Some(Flaw::NoExtendedKeyUsage) => params.extended_key_usages.clear(),
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        let mut cert_pem = cert.pem();
        for (der, pem) in &self.chain {
            chain.push(der.clone());
            cert_pem.push_str(pem);
        }
        Svid {
            id: id.to_owned(),
            chain,
            cert_pem,
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

/// A TLS 1.3 client configuration that trusts `server_ca`'s root for the
/// server (any name, serverAuth), presents `client` if given, offers `alpn`,
/// and never resumes sessions.
pub fn client_config(server_ca: &Ca, client: Option<&Svid>, alpn: &[&str]) -> Arc<ClientConfig> {
    client_config_roots(&server_ca.bundle(), client, alpn)
}

/// [`client_config`] trusting any of `roots`.
pub fn client_config_roots(
    roots: &[CertificateDer<'static>],
    client: Option<&Svid>,
    alpn: &[&str],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnyNameServerVerifier {
        anchors: roots
            .iter()
            .map(|r| webpki::anchor_from_trusted_cert(r).unwrap().to_owned())
            .collect(),
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client {
        Some(svid) => builder
            .with_client_auth_cert(svid.chain.clone(), svid.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Opens a TLS connection to `addr` (server name `localhost`).
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The leaf certificate the server presented on `stream`.
pub fn server_leaf(
    stream: &tokio_rustls::client::TlsStream<TcpStream>,
) -> Option<CertificateDer<'static>> {
    let certs = stream.get_ref().1.peer_certificates()?;
    certs.first().map(|c| c.clone().into_owned())
}

/// Verifies the server chain to the roots; SVIDs carry no DNS name to check.
#[derive(Debug)]
struct AnyNameServerVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyNameServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
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
