//! ECDSA P-256 keys for signing artifacts: generating a pair, reading and
//! writing PEM (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` read only, and
//! PKIX `PUBLIC KEY`), signing and verifying with SHA-256 and DER-encoded
//! signatures (what cosign and `openssl dgst -sha256 -sign` make), and a
//! key id for display. cosign's encrypted private key format (`ENCRYPTED
//! COSIGN PRIVATE KEY`) is not read yet.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};

use crate::artifact::hex;

/// The DER prefix of a P-256 SubjectPublicKeyInfo, up to the 65-byte
/// uncompressed point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
/// BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The AlgorithmIdentifier { id-ecPublicKey, prime256v1 } (DER).
const P256_ALGORITHM: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The 65-byte uncompressed point.
    point: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM (as `openssl pkey -pubout` and cosign
    /// write it) holding an uncompressed P-256 point.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let der = pem_block(pem, "PUBLIC KEY")?;
        PublicKey::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo of an uncompressed P-256 point.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => Err(KeyError::NotP256 { what: "public key" }),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], &self.point].concat()
    }

    /// The `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.spki_der())
    }

    /// A short id for display: the first 16 hex digits of the sha256 of the
    /// DER SubjectPublicKeyInfo (`openssl pkey -pubin -outform DER | sha256sum`).
    pub fn key_id(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.spki_der());
        hex(&d.as_ref()[..8])
    }

    /// Whether `signature` (DER ECDSA) is this key's signature of the
    /// SHA-256 of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// An ECDSA P-256 private key.
pub struct PrivateKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public_key().key_id())
    }
}

impl PrivateKey {
    /// A new random key.
    pub fn generate() -> Result<PrivateKey, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| KeyError::Random)?;
        PrivateKey::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Reads a private key PEM: PKCS#8 `PRIVATE KEY` (`openssl genpkey
    /// -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, and what
    /// [`PrivateKey::to_pem`] writes) or SEC1 `EC PRIVATE KEY` (`openssl
    /// ecparam -name prime256v1 -genkey`); either must hold the public key,
    /// as openssl writes it.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        if pem.contains("-----BEGIN ENCRYPTED") {
            return Err(KeyError::Encrypted);
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            let sec1 = pem_block(pem, "EC PRIVATE KEY")?;
            return PrivateKey::from_pkcs8_der(&sec1_to_pkcs8(&sec1));
        }
        PrivateKey::from_pkcs8_der(&pem_block(pem, "PRIVATE KEY")?)
    }

    /// Reads a DER PKCS#8 P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng).map_err(|e| {
                KeyError::Rejected {
                    reason: e.to_string(),
                }
            })?;
        Ok(PrivateKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The PKCS#8 `PRIVATE KEY` PEM.
    pub fn to_pem(&self) -> String {
        to_pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// The DER ECDSA signature of the SHA-256 of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        self.pair
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyError::Random)
    }
}

/// Generates a key pair and writes `PREFIX.key` (PKCS#8 PEM, mode 0600)
/// and `PREFIX.pub` (PKIX PEM). Refuses to overwrite either file. Returns
/// the two paths and the public key.
pub fn generate_files(prefix: &Path) -> Result<(PathBuf, PathBuf, PublicKey), KeyError> {
    let key = PrivateKey::generate()?;
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (key_path, pub_path) = (with(".key"), with(".pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    write_new(&key_path, key.to_pem().as_bytes(), 0o600)?;
    let public = key.public_key();
    write_new(&pub_path, public.to_pem().as_bytes(), 0o644)?;
    Ok((key_path, pub_path, public))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |e: std::io::Error| KeyError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Wraps a SEC1 ECPrivateKey (which must be P-256) into PKCS#8 v1.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&P256_ALGORITHM);
    body.push(0x04);
    der_len(&mut body, sec1.len());
    body.extend_from_slice(sec1);
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

/// The DER of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let missing = || KeyError::Pem {
        label: label.to_string(),
    };
    let start = pem.find(&begin).ok_or_else(missing)? + begin.len();
    let stop = pem[start..].find(&end).ok_or_else(missing)? + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| missing())
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why a key cannot be read, made or written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No PEM block with the label, or its base64 is broken.
    Pem {
        /// The label looked for, e.g. `PUBLIC KEY`.
        label: String,
    },
    /// The key is not an ECDSA P-256 key in the supported encoding.
    NotP256 {
        /// `public key` or `private key`.
        what: &'static str,
    },
    /// ring rejected the private key.
    Rejected {
        /// ring's reason.
        reason: String,
    },
    /// The key is encrypted (cosign's format): not read yet.
    Encrypted,
    /// The system random number generator failed.
    Random,
    /// A file to write already exists.
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file cannot be written.
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Pem { label } => {
                write!(f, "no valid `{label}` PEM block found")
            }
            KeyError::NotP256 { what } => {
                write!(f, "the {what} is not an uncompressed ecdsa p-256 key")
            }
            KeyError::Rejected { reason } => {
                write!(f, "the private key is not a usable ecdsa p-256 pkcs#8 key: {reason}")
            }
            KeyError::Encrypted => f.write_str(
                "encrypted private keys (cosign's format) are not supported yet; use an unencrypted pkcs#8 `PRIVATE KEY` pem",
            ),
            KeyError::Random => f.write_str("the system random number generator failed"),
            KeyError::Exists { path } => {
                write!(f, "`{}` already exists; not overwriting it", path.display())
            }
            KeyError::Io { path, reason } => {
                write!(f, "cannot write `{}`: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem_and_signs() {
        let key = PrivateKey::generate().unwrap();
        let again = PrivateKey::from_pem(&key.to_pem()).unwrap();
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(again.public_key(), public);
        let sig = key.sign(b"hello").unwrap();
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        assert_eq!(public.key_id().len(), 16);
    }

    #[test]
    fn bad_pem_is_refused() {
        assert_eq!(
            PublicKey::from_pem("nothing"),
            Err(KeyError::Pem {
                label: "PUBLIC KEY".into()
            })
        );
        let not_p256 = to_pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
        assert_eq!(
            PublicKey::from_pem(&not_p256),
            Err(KeyError::NotP256 { what: "public key" })
        );
        assert_eq!(
            PrivateKey::from_pem("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n").unwrap_err(),
            KeyError::Encrypted
        );
        let junk = to_pem("PRIVATE KEY", b"junk");
        assert!(matches!(
            PrivateKey::from_pem(&junk),
            Err(KeyError::Rejected { .. })
        ));
    }

    #[test]
    fn generate_files_writes_a_private_key_only_the_owner_reads() {
        let dir = std::env::temp_dir().join(format!("sluice-fleet-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("signer");
        let (k, p, public) = generate_files(&prefix).unwrap();
        let key = PrivateKey::from_pem(&std::fs::read_to_string(&k).unwrap()).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(
            PublicKey::from_pem(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            public
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&k).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            generate_files(&prefix),
            Err(KeyError::Exists { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
