//! Credentials and trust bundles read from PEM files.

use super::svid::{Credentials, IdentityError, TrustBundles};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An identity as PEM files: the SVID chain, its key, and trust bundles.
#[derive(Clone, Debug)]
pub struct FileIdentity {
    /// PEM certificate chain of the SVID, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the SVID (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// Trust domain name to a PEM file of its CA certificates.
    pub trust_bundles: BTreeMap<String, PathBuf>,
}

impl FileIdentity {
    /// Reads and checks the SVID and its key.
    pub fn load_credentials(&self) -> Result<Credentials, IdentityError> {
        let chain = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        Credentials::from_der(chain, key)
    }

    /// Reads every trust bundle.
    pub fn load_trust_bundles(&self) -> Result<TrustBundles, IdentityError> {
        let mut bundles = TrustBundles::new();
        for (trust_domain, path) in &self.trust_bundles {
            bundles.insert(trust_domain, read_certs(path)?)?;
        }
        Ok(bundles)
    }

    /// Every file, certificate and key first.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.trust_bundles.values().map(PathBuf::as_path));
        paths
    }
}

/// The `CERTIFICATE` blocks of a PEM file, in order; at least one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid_pem(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, IdentityError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(pem_error(
            path,
            "holds no PEM private key (PKCS#8, SEC1 or PKCS#1)".into(),
        )),
        Err(e) => Err(invalid_pem(path, e)),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|error| IdentityError::Read {
        path: path.to_owned(),
        error,
    })
}

/// `is not valid PEM: ...`, with the markers and lines of the file as text
/// (`pem::Error` shows them as byte arrays).
fn invalid_pem(path: &Path, error: pem::Error) -> IdentityError {
    let problem = match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "section end {:?} missing",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "illegal section start: {:?}",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(e) => format!("base64 decode error: {e}"),
        other => other.to_string(),
    };
    pem_error(path, format!("is not valid PEM: {problem}"))
}

fn pem_error(path: &Path, problem: String) -> IdentityError {
    IdentityError::Pem {
        path: path.to_owned(),
        problem,
    }
}
