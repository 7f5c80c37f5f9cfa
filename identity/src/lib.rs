//! SPIFFE identities for Sluice: X.509-SVIDs and trust bundles, their
//! verification, and the rustls configurations built on them.
//!
//! [`IdentityStore`] holds the current credentials and trust bundles; its
//! [`server_config`](IdentityStore::server_config) (mTLS termination) and
//! [`client_config`] (mTLS origination) read them at every handshake, so
//! rotation swaps them without a new rustls configuration. Layout:
//!
//! - [`svid`]: credentials, trust bundles, X.509-SVID verification.
//! - [`files`]: an identity from PEM files.
//! - [`workload_api`]: an identity from the SPIFFE Workload API (a tonic
//!   client of an agent's Unix socket), with updates on rotation.
//! - [`client`]: the client configuration and the peer checks of origination.
//! - `test_certs` (feature `test-certs`): CAs and SVIDs made for tests.

pub mod client;
pub mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod svid;
#[cfg(feature = "test-certs")]
pub mod test_certs;
pub mod workload_api;

#[cfg(test)]
mod tests;

pub use client::{client_config, server_name};
/// The certificate, key and time types of this module's signatures.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
pub use svid::{verify_svid, Credentials, IdentityError, TrustBundles, Usage};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

/// The current credentials and trust bundles, shared with the TLS callbacks.
#[derive(Debug, Default)]
struct Current {
    credentials: RwLock<Option<Arc<Credentials>>>,
    bundles: RwLock<Arc<TrustBundles>>,
}

impl Current {
    fn credentials(&self) -> Option<Arc<Credentials>> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn bundles(&self) -> Arc<TrustBundles> {
        self.bundles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A workload's current credentials and trust bundles, swapped on rotation.
#[derive(Debug, Default)]
pub struct IdentityStore {
    current: Arc<Current>,
    server_config: OnceLock<Arc<ServerConfig>>,
}

impl IdentityStore {
    /// An empty store: no credentials, no trust bundles.
    pub fn new() -> Arc<IdentityStore> {
        Arc::new(IdentityStore::default())
    }

    /// Replaces the credentials; the next handshake presents them.
    pub fn set_credentials(&self, creds: Credentials) {
        *self
            .current
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(creds));
    }

    /// Replaces every trust bundle; the next handshake verifies against them.
    pub fn set_trust_bundles(&self, bundles: TrustBundles) {
        *self
            .current
            .bundles
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(bundles);
    }

    /// Whether credentials are held.
    pub fn has_credentials(&self) -> bool {
        self.current.credentials().is_some()
    }

    /// Whether at least one trust bundle is held.
    pub fn has_trust_bundles(&self) -> bool {
        !self.current.bundles().is_empty()
    }

    /// The notAfter of the current SVID's leaf.
    pub fn svid_not_after(&self) -> Option<SystemTime> {
        self.current.credentials().map(|c| c.not_after())
    }

    /// The SPIFFE ID of the current SVID.
    pub fn spiffe_id(&self) -> Option<String> {
        self.current.credentials().map(|c| c.spiffe_id().to_owned())
    }

    /// The current credentials.
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        self.current.credentials()
    }

    /// The current trust bundles.
    pub fn trust_bundles(&self) -> Arc<TrustBundles> {
        self.current.bundles()
    }

    /// rustls server config built once; its cert resolver and client verifier read the
    /// current credentials and bundles at each handshake, so rotation needs no new config.
    /// TLS 1.3 only, ALPN `h2` and `http/1.1`, client certificates optional, no resumption.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        self.server_config
            .get_or_init(|| Arc::new(build_server_config(&self.current)))
            .clone()
    }
}

fn build_server_config(current: &Arc<Current>) -> ServerConfig {
    let provider = svid::provider().clone();
    let verifier = SvidClientVerifier {
        current: current.clone(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the ring provider supports TLS 1.3")
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(CurrentCert {
            current: current.clone(),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // A resumed session skips client verification: bundles removed since
    // would still admit the client.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

/// The verified SPIFFE ID of the client of a finished handshake (None if it presented no certificate).
///
/// Only meaningful for connections accepted with [`IdentityStore::server_config`],
/// whose verifier has already checked the chain.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    svid::uri_san(leaf).ok()
}

/// Presents the current credentials.
#[derive(Debug)]
struct CurrentCert {
    current: Arc<Current>,
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.credentials().map(|c| c.certified_key())
    }
}

/// Verifies a client SVID, when one is presented, against the current bundles.
#[derive(Debug)]
struct SvidClientVerifier {
    current: Arc<Current>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for SvidClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(CertificateDer::from(end_entity.as_ref()));
        chain.extend(
            intermediates
                .iter()
                .map(|c| CertificateDer::from(c.as_ref())),
        );
        match verify_svid(&chain, &self.current.bundles(), now, Usage::Client) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(e))),
            )),
        }
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
