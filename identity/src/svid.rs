//! X.509-SVIDs: our credentials, trust bundles per trust domain, and the
//! verification of a peer's SVID chain (SPIFFE X509-SVID specification).

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use sluice_runtime::peer::is_valid_spiffe_id;
use sluice_runtime::SpiffeId;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// What a verified SVID is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A TLS client: the `clientAuth` extended key usage is required.
    Client,
    /// A TLS server: `serverAuth` is required when the SVID lists extended key usages.
    Server,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Usage::Client => "clientAuth",
            Usage::Server => "serverAuth",
        })
    }
}

/// Why an SVID, a key or a trust bundle was rejected. `Debug` prints the
/// message too: rustls shows a verifier's error with `Debug`.
#[non_exhaustive]
pub enum IdentityError {
    /// The certificate chain is empty.
    NoCertificate,
    /// A certificate is not valid X.509 DER.
    Malformed(String),
    /// The leaf does not carry exactly one URI SAN.
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    InvalidSpiffeId(String),
    /// The leaf is a CA certificate.
    LeafIsCa(String),
    /// The leaf's SPIFFE ID has no path (`spiffe://td`): X509-SVID requires one.
    LeafWithoutPath(String),
    /// A signing (CA) certificate of the chain has a SPIFFE ID with a path,
    /// which X509-SVID forbids.
    SignerWithPath {
        /// The leaf's SPIFFE ID.
        id: String,
        /// The signing certificate's SPIFFE ID.
        signer: String,
    },
    /// The leaf's key usage does not fit an SVID.
    KeyUsage {
        /// The SVID's SPIFFE ID.
        id: String,
        /// What is wrong, e.g. "lacks the digitalSignature key usage".
        problem: &'static str,
    },
    /// The leaf lacks the extended key usage needed for `usage`.
    ExtendedKeyUsage {
        /// The SVID's SPIFFE ID.
        id: String,
        /// The use it was presented for.
        usage: Usage,
    },
    /// The leaf's notAfter is in the past.
    Expired(String),
    /// The leaf's notBefore is in the future.
    NotYetValid(String),
    /// No trust bundle is held for the SPIFFE ID's trust domain.
    UnknownTrustDomain {
        /// The SVID's SPIFFE ID.
        id: String,
        /// Its trust domain.
        trust_domain: String,
    },
    /// The chain does not verify against the trust domain's bundle.
    Untrusted {
        /// The SVID's SPIFFE ID.
        id: String,
        /// Its trust domain.
        trust_domain: String,
        /// The webpki error.
        reason: String,
    },
    /// A trust domain name is not valid.
    InvalidTrustDomain(String),
    /// A trust bundle holds no certificate.
    EmptyBundle(String),
    /// A trust bundle certificate cannot be a trust anchor.
    BadRoot {
        /// The bundle's trust domain.
        trust_domain: String,
        /// The webpki error.
        reason: String,
    },
    /// The private key cannot be used by rustls.
    BadKey(String),
    /// The private key is not the key of the SVID.
    KeyMismatch(String),
    /// A file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A file does not hold the expected PEM blocks.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "holds no PEM certificate".
        problem: String,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NoCertificate => write!(f, "no certificate was presented"),
            IdentityError::Malformed(e) => write!(f, "malformed certificate: {e}"),
            IdentityError::UriSanCount(n) => {
                write!(f, "an SVID needs exactly one URI SAN, this one has {n}")
            }
            IdentityError::InvalidSpiffeId(id) => write!(f, "`{id}` is not a valid SPIFFE ID"),
            IdentityError::LeafIsCa(id) => write!(f, "the SVID of `{id}` is a CA certificate"),
            IdentityError::LeafWithoutPath(id) => {
                write!(f, "the SVID of `{id}` has no path: a leaf SVID needs one")
            }
            IdentityError::SignerWithPath { id, signer } => write!(
                f,
                "the SVID of `{id}` is signed by a certificate whose SPIFFE ID `{signer}` has a path"
            ),
            IdentityError::KeyUsage { id, problem } => write!(f, "the SVID of `{id}` {problem}"),
            IdentityError::ExtendedKeyUsage { id, usage } => {
                write!(f, "the SVID of `{id}` lacks the {usage} extended key usage")
            }
            IdentityError::Expired(id) => write!(f, "the SVID of `{id}` has expired"),
            IdentityError::NotYetValid(id) => write!(f, "the SVID of `{id}` is not valid yet"),
            IdentityError::UnknownTrustDomain { id, trust_domain } => write!(
                f,
                "no trust bundle for trust domain `{trust_domain}` of `{id}`"
            ),
            IdentityError::Untrusted {
                id,
                trust_domain,
                reason,
            } => write!(
                f,
                "the SVID of `{id}` does not verify against the trust bundle of `{trust_domain}`: {reason}"
            ),
            IdentityError::InvalidTrustDomain(td) => {
                write!(f, "`{td}` is not a valid trust domain name")
            }
            IdentityError::EmptyBundle(td) => {
                write!(f, "the trust bundle of `{td}` holds no certificate")
            }
            IdentityError::BadRoot {
                trust_domain,
                reason,
            } => write!(
                f,
                "a certificate of the trust bundle of `{trust_domain}` cannot be a trust anchor: {reason}"
            ),
            IdentityError::BadKey(e) => write!(f, "unusable private key: {e}"),
            IdentityError::KeyMismatch(id) => {
                write!(f, "the private key does not match the SVID of `{id}`")
            }
            IdentityError::Read { path, error } => {
                write!(f, "cannot read `{}`: {error}", path.display())
            }
            IdentityError::Pem { path, problem } => write!(f, "`{}` {problem}", path.display()),
        }
    }
}

impl fmt::Debug for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdentityError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Our SVID: its chain (leaf first), its key, its SPIFFE ID and notAfter.
#[derive(Clone)]
pub struct Credentials {
    certified: Arc<CertifiedKey>,
    spiffe_id: String,
    not_after: SystemTime,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("spiffe_id", &self.spiffe_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Checks the leaf as an SVID usable by a TLS server (all rules but the
    /// chain) and that `key` is its key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Credentials, IdentityError> {
        let leaf = chain.first().ok_or(IdentityError::NoCertificate)?;
        let cert = parse(leaf)?;
        let spiffe_id = check_leaf(&cert, UnixTime::now(), Usage::Server)?;
        check_signers(&spiffe_id, &chain[1..])?;
        let not_after = to_system_time(cert.validity().not_after.timestamp());
        let certified = CertifiedKey::from_der(chain, key, provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                IdentityError::KeyMismatch(spiffe_id.clone())
            }
            e => IdentityError::BadKey(e.to_string()),
        })?;
        Ok(Credentials {
            certified: Arc::new(certified),
            spiffe_id,
            not_after,
        })
    }

    /// The SVID's SPIFFE ID.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// The leaf's notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    /// The chain and signing key as rustls uses them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }
}

#[derive(Debug)]
struct Bundle {
    roots: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

/// Root CA certificates per trust domain name (e.g. `example.org`).
#[derive(Clone, Debug, Default)]
pub struct TrustBundles {
    domains: BTreeMap<String, Arc<Bundle>>,
}

impl TrustBundles {
    /// No trust domain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the roots of `trust_domain`, replacing any it had.
    pub fn insert(
        &mut self,
        trust_domain: &str,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<(), IdentityError> {
        if trust_domain.contains('/') || !is_valid_spiffe_id(&format!("spiffe://{trust_domain}")) {
            return Err(IdentityError::InvalidTrustDomain(trust_domain.to_owned()));
        }
        if roots.is_empty() {
            return Err(IdentityError::EmptyBundle(trust_domain.to_owned()));
        }
        // X509-SVID: a signing certificate's SPIFFE ID has no path.
        let bad_root = |reason: String| IdentityError::BadRoot {
            trust_domain: trust_domain.to_owned(),
            reason,
        };
        for root in &roots {
            let with_path = parse(root)
                .and_then(|cert| spiffe_id_with_path(&cert))
                .map_err(|e| bad_root(e.to_string()))?;
            if let Some(id) = with_path {
                return Err(bad_root(format!("its SPIFFE ID `{id}` has a path")));
            }
        }
        let anchors = roots
            .iter()
            .map(|root| {
                webpki::anchor_from_trusted_cert(root)
                    .map(|a| a.to_owned())
                    .map_err(|e| IdentityError::BadRoot {
                        trust_domain: trust_domain.to_owned(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.domains
            .insert(trust_domain.to_owned(), Arc::new(Bundle { roots, anchors }));
        Ok(())
    }

    /// The trust domains held, in order.
    pub fn trust_domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// The roots of `trust_domain`.
    pub fn roots(&self, trust_domain: &str) -> Option<&[CertificateDer<'static>]> {
        self.domains.get(trust_domain).map(|b| b.roots.as_slice())
    }

    /// Whether no trust domain is held.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

/// Verifies an X.509-SVID chain (leaf first) and returns its SPIFFE ID.
pub fn verify_svid(
    chain: &[CertificateDer<'_>],
    bundles: &TrustBundles,
    now: UnixTime,
    usage: Usage,
) -> Result<String, IdentityError> {
    let (leaf, intermediates) = chain.split_first().ok_or(IdentityError::NoCertificate)?;
    let id = check_leaf(&parse(leaf)?, now, usage)?;
    check_signers(&id, intermediates)?;
    // `check_leaf` gave a valid SPIFFE ID.
    let trust_domain = SpiffeId::parse(&id).map_or("", |id| id.trust_domain());
    let Some(bundle) = bundles.domains.get(trust_domain) else {
        return Err(IdentityError::UnknownTrustDomain {
            trust_domain: trust_domain.to_owned(),
            id,
        });
    };
    let untrusted = |reason: String| IdentityError::Untrusted {
        id: id.clone(),
        trust_domain: trust_domain.to_owned(),
        reason,
    };
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| untrusted(e.to_string()))?;
    let eku = match usage {
        Usage::Client => webpki::KeyUsage::client_auth(),
        Usage::Server => webpki::KeyUsage::server_auth(),
    };
    end_entity
        .verify_for_usage(
            provider().signature_verification_algorithms.all,
            &bundle.anchors,
            intermediates,
            now,
            eku,
            None,
            None,
        )
        .map_err(|e| untrusted(e.to_string()))?;
    Ok(id)
}

/// The SPIFFE ID of the single URI SAN of `cert`, with no other check.
pub(crate) fn uri_san(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let cert = parse(cert)?;
    single_uri_san(&cert)
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, IdentityError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(IdentityError::Malformed(
            "trailing bytes after the certificate".into(),
        )),
        Err(e) => Err(IdentityError::Malformed(e.to_string())),
    }
}

fn single_uri_san(cert: &X509Certificate<'_>) -> Result<String, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let names = san.map(|s| s.value.general_names.as_slice()).unwrap_or(&[]);
    if names.iter().any(|n| matches!(n, GeneralName::Invalid(..))) {
        return Err(IdentityError::Malformed(
            "invalid subject alternative name".into(),
        ));
    }
    let mut uris = names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    match (uris.next(), uris.next()) {
        (Some(uri), None) if is_valid_spiffe_id(uri) => Ok(uri.to_owned()),
        (Some(uri), None) => Err(IdentityError::InvalidSpiffeId(uri.to_owned())),
        (None, _) => Err(IdentityError::UriSanCount(0)),
        (Some(_), Some(_)) => Err(IdentityError::UriSanCount(2 + uris.count())),
    }
}

/// A SPIFFE ID with a path among the URI SANs of `cert`, if any.
fn spiffe_id_with_path(cert: &X509Certificate<'_>) -> Result<Option<String>, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let names = san.map(|s| s.value.general_names.as_slice()).unwrap_or(&[]);
    Ok(names.iter().find_map(|n| match n {
        GeneralName::URI(uri) => uri
            .strip_prefix("spiffe://")
            .is_some_and(|rest| rest.contains('/'))
            .then(|| (*uri).to_owned()),
        _ => None,
    }))
}

/// X509-SVID: the SPIFFE ID of a signing certificate, when it has one, has
/// no path. Checks every CA certificate sent after the leaf of `id`.
fn check_signers(id: &str, intermediates: &[CertificateDer<'_>]) -> Result<(), IdentityError> {
    for der in intermediates {
        let cert = parse(der)?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| IdentityError::Malformed(e.to_string()))?
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            continue;
        }
        if let Some(signer) = spiffe_id_with_path(&cert)? {
            return Err(IdentityError::SignerWithPath {
                id: id.to_owned(),
                signer,
            });
        }
    }
    Ok(())
}

/// Every X509-SVID leaf rule but the chain; returns the SPIFFE ID.
fn check_leaf(
    cert: &X509Certificate<'_>,
    now: UnixTime,
    usage: Usage,
) -> Result<String, IdentityError> {
    let id = single_uri_san(cert)?;
    let malformed = |e: x509_parser::error::X509Error| IdentityError::Malformed(e.to_string());
    if cert
        .basic_constraints()
        .map_err(malformed)?
        .is_some_and(|b| b.value.ca)
    {
        return Err(IdentityError::LeafIsCa(id));
    }
    if SpiffeId::parse(&id).is_ok_and(|id| id.path().is_empty()) {
        return Err(IdentityError::LeafWithoutPath(id));
    }
    let key_usage_problem = match cert.key_usage().map_err(malformed)? {
        None => Some("has no key usage extension"),
        Some(ku) if !ku.value.digital_signature() => Some("lacks the digitalSignature key usage"),
        Some(ku) if ku.value.key_cert_sign() || ku.value.crl_sign() => {
            Some("has the keyCertSign or cRLSign key usage")
        }
        Some(_) => None,
    };
    if let Some(problem) = key_usage_problem {
        return Err(IdentityError::KeyUsage { id, problem });
    }
    let eku_ok = match (cert.extended_key_usage().map_err(malformed)?, usage) {
        (None, Usage::Client) => false,
        (None, Usage::Server) => true,
        (Some(eku), Usage::Client) => eku.value.client_auth,
        (Some(eku), Usage::Server) => eku.value.server_auth,
    };
    if !eku_ok {
        return Err(IdentityError::ExtendedKeyUsage { id, usage });
    }
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(IdentityError::NotYetValid(id));
    }
    if now > validity.not_after.timestamp() {
        return Err(IdentityError::Expired(id));
    }
    Ok(id)
}

fn to_system_time(secs: i64) -> SystemTime {
    let offset = Duration::from_secs(secs.unsigned_abs());
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// The ring crypto provider, built once.
pub(crate) fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}
