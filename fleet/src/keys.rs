//! ECDSA P-256 keys for signing artifacts: generating a pair, reading and
//! writing PEM (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` read only, and
//! PKIX `PUBLIC KEY`), signing and verifying with SHA-256 and DER-encoded
//! signatures (what cosign and `openssl dgst -sha256 -sign` make), and a
//! key id for display. cosign's password-encrypted private keys
//! (`ENCRYPTED SIGSTORE PRIVATE KEY`, and `ENCRYPTED COSIGN PRIVATE KEY` from
//! older cosign) are read and written: the PEM body is JSON naming a scrypt
//! key derivation and a NaCl secretbox (XSalsa20-Poly1305) that seals the
//! PKCS#8 DER.

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
    /// as openssl writes it. An encrypted key is refused: read it with
    /// [`PrivateKey::from_pem_with_password`].
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_pem_with_password(pem, None)
    }

    /// Reads a private key PEM as [`PrivateKey::from_pem`] does, and also
    /// cosign's encrypted keys (`ENCRYPTED SIGSTORE PRIVATE KEY`, `ENCRYPTED
    /// COSIGN PRIVATE KEY`), opened with `password` (cosign takes it from
    /// `COSIGN_PASSWORD`; an empty password is a password). A plain PEM
    /// ignores the password. scrypt costs are bounded to what cosign writes
    /// (N from 2^15 to 2^17, r = 8, p = 1) so a crafted key cannot take the
    /// machine's memory or time.
    pub fn from_pem_with_password(
        pem: &str,
        password: Option<&[u8]>,
    ) -> Result<PrivateKey, KeyError> {
        let cosign_label = COSIGN_ENCRYPTED_LABELS
            .iter()
            .find(|label| pem.contains(&format!("-----BEGIN {label}-----")));
        if let Some(label) = cosign_label {
            let password = password.ok_or(KeyError::PasswordRequired)?;
            let sealed = pem_block(pem, label)?;
            return PrivateKey::from_pkcs8_der(&open_sealed(&sealed, password)?);
        }
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

    /// cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` PEM: the PKCS#8 DER sealed
    /// with `password` (scrypt N = 2^16, r = 8, p = 1, as cosign 2 writes;
    /// fresh random salt and nonce), which `cosign sign --key` reads.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, KeyError> {
        let sealed = seal(&self.pkcs8, password, WRITE_LOG_N)?;
        Ok(to_pem(COSIGN_ENCRYPTED_LABELS[0], &sealed))
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
    generate_files_with_password(prefix, None)
}

/// [`generate_files`], with `PREFIX.key` written as cosign's encrypted PEM
/// ([`PrivateKey::to_encrypted_pem`]) when `password` is given.
pub fn generate_files_with_password(
    prefix: &Path,
    password: Option<&[u8]>,
) -> Result<(PathBuf, PathBuf, PublicKey), KeyError> {
    let key = PrivateKey::generate()?;
    let key_pem = match password {
        Some(password) => key.to_encrypted_pem(password)?,
        None => key.to_pem(),
    };
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
    write_new(&key_path, key_pem.as_bytes(), 0o600)?;
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

/// The environment variable cosign takes a private key's password from;
/// `sluice sign` and `sluice keys generate --encrypt` take it from there too.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The password in [`PASSWORD_ENV`] when it is set (set and empty is the
/// empty password, as for cosign), as the bytes of the environment.
pub fn password_from_env() -> Option<Vec<u8>> {
    std::env::var_os(PASSWORD_ENV).map(|v| v.into_encoded_bytes())
}

/// The PEM labels of cosign's encrypted private keys: what cosign writes
/// today first (and what [`PrivateKey::to_encrypted_pem`] writes), then the
/// label of cosign before 2.0.
const COSIGN_ENCRYPTED_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// The scrypt costs read: log2 of N from 15 (cosign before 2.0) to 17, with
/// r = 8 and p = 1. N = 2^17 takes 128 MiB and about a second.
const MIN_LOG_N: u32 = 15;
const MAX_LOG_N: u32 = 17;
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;
/// The scrypt cost written: N = 2^16, what cosign 2 writes.
const WRITE_LOG_N: u8 = 16;
/// Salt and nonce lengths written (cosign's), and the longest salt read.
const SALT_LEN: usize = 32;
const MAX_SALT_LEN: usize = 1024;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The JSON inside cosign's encrypted PEM (go-securesystemslib's
/// `encrypted` format). Fields in the order cosign writes them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    kdf: SealedKdf,
    cipher: SealedCipher,
    /// base64 of the secretbox: the 16-byte Poly1305 tag, then the
    /// XSalsa20-encrypted PKCS#8.
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedKdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScryptParams {
    #[serde(rename = "N", alias = "n")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedCipher {
    name: String,
    nonce: String,
}

/// The 32-byte secretbox key: scrypt(password, salt, N = 2^log_n, r, p).
fn derive_key(password: &[u8], salt: &[u8], log_n: u8) -> Result<[u8; 32], KeyError> {
    let params = scrypt::Params::new(log_n, SCRYPT_R as u32, SCRYPT_P as u32).map_err(|e| {
        KeyError::EncryptedFormat {
            reason: format!("scrypt parameters: {e}"),
        }
    })?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).map_err(|e| KeyError::EncryptedFormat {
        reason: format!("scrypt: {e}"),
    })?;
    Ok(key)
}

/// Opens the PEM body of a cosign encrypted key with `password`: the DER
/// inside.
fn open_sealed(body: &[u8], password: &[u8]) -> Result<Vec<u8>, KeyError> {
    use crypto_secretbox::aead::{Aead, KeyInit};

    let format = |reason: &str| KeyError::EncryptedFormat {
        reason: reason.to_string(),
    };
    let sealed: Sealed = serde_json::from_slice(body).map_err(|e| KeyError::EncryptedFormat {
        reason: format!("not cosign's json: {e}"),
    })?;
    if sealed.kdf.name != "scrypt" {
        return Err(KeyError::EncryptedFormat {
            reason: format!(
                "key derivation `{}` (only `scrypt` is read)",
                sealed.kdf.name
            ),
        });
    }
    if sealed.cipher.name != "nacl/secretbox" {
        return Err(KeyError::EncryptedFormat {
            reason: format!(
                "cipher `{}` (only `nacl/secretbox` is read)",
                sealed.cipher.name
            ),
        });
    }
    let ScryptParams { n, r, p } = sealed.kdf.params;
    let log_n = n.trailing_zeros();
    if !n.is_power_of_two()
        || !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n)
        || r != SCRYPT_R
        || p != SCRYPT_P
    {
        return Err(KeyError::ScryptCost { n, r, p });
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64
        .decode(&sealed.kdf.salt)
        .map_err(|_| format("the salt is not base64"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(format("the salt is empty or longer than 1024 bytes"));
    }
    let nonce = b64
        .decode(&sealed.cipher.nonce)
        .map_err(|_| format("the nonce is not base64"))?;
    if nonce.len() != NONCE_LEN {
        return Err(format("the nonce is not 24 bytes"));
    }
    let boxed = b64
        .decode(&sealed.ciphertext)
        .map_err(|_| format("the ciphertext is not base64"))?;
    if boxed.len() < TAG_LEN {
        return Err(format("the ciphertext is shorter than its 16-byte tag"));
    }
    // log_n is at most MAX_LOG_N (17): it fits in a u8.
    let key = derive_key(password, &salt, log_n as u8)?;
    crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            boxed.as_slice(),
        )
        .map_err(|_| KeyError::WrongPassword)
}

/// Seals `der` with `password` into the JSON of cosign's encrypted PEM.
fn seal(der: &[u8], password: &[u8], log_n: u8) -> Result<Vec<u8>, KeyError> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    use ring::rand::SecureRandom;

    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt).map_err(|_| KeyError::Random)?;
    rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let key = derive_key(password, &salt, log_n)?;
    let boxed = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
        .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), der)
        .map_err(|_| KeyError::EncryptedFormat {
            reason: "the secretbox refused to seal the key".into(),
        })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = Sealed {
        kdf: SealedKdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << log_n,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: b64.encode(salt),
        },
        cipher: SealedCipher {
            name: "nacl/secretbox".into(),
            nonce: b64.encode(nonce),
        },
        ciphertext: b64.encode(boxed),
    };
    serde_json::to_vec(&sealed).map_err(|e| KeyError::EncryptedFormat {
        reason: e.to_string(),
    })
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
    /// The key is encrypted in a format other than cosign's (e.g. openssl's
    /// PKCS#8 `ENCRYPTED PRIVATE KEY`): not read.
    Encrypted,
    /// The key is cosign's encrypted format and no password was given.
    PasswordRequired,
    /// The key is labelled as cosign's encrypted format but its content is
    /// not that format.
    EncryptedFormat {
        /// What is wrong.
        reason: String,
    },
    /// The scrypt costs of a cosign encrypted key are outside what is read
    /// (N from 2^15 to 2^17, r = 8, p = 1).
    ScryptCost {
        /// scrypt's N.
        n: u64,
        /// scrypt's r.
        r: u64,
        /// scrypt's p.
        p: u64,
    },
    /// The secretbox did not open: a wrong password, or the key was changed.
    WrongPassword,
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
                "this encrypted private key format is not supported; use cosign's encrypted key (`ENCRYPTED SIGSTORE PRIVATE KEY`) or an unencrypted pkcs#8 `PRIVATE KEY` pem",
            ),
            KeyError::PasswordRequired => f.write_str(
                "the private key is encrypted (cosign's format); set `COSIGN_PASSWORD` to its password",
            ),
            KeyError::EncryptedFormat { reason } => {
                write!(f, "the encrypted private key is not in cosign's format: {reason}")
            }
            KeyError::ScryptCost { n, r, p } => write!(
                f,
                "the encrypted private key asks for scrypt N={n}, r={r}, p={p}; only N from 32768 to 131072 (a power of two) with r=8, p=1 is accepted"
            ),
            KeyError::WrongPassword => f.write_str(
                "wrong password or corrupted key: the encrypted private key does not open",
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
            PrivateKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n").unwrap_err(),
            KeyError::Encrypted
        );
        let junk = to_pem("PRIVATE KEY", b"junk");
        assert!(matches!(
            PrivateKey::from_pem(&junk),
            Err(KeyError::Rejected { .. })
        ));
    }

    /// The JSON inside an encrypted PEM written here.
    fn sealed_json(pem: &str) -> serde_json::Value {
        let body = pem_block(pem, COSIGN_ENCRYPTED_LABELS[0]).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// A cosign-labelled PEM around `json`.
    fn cosign_pem(json: &serde_json::Value) -> String {
        to_pem(
            COSIGN_ENCRYPTED_LABELS[0],
            serde_json::to_string(json).unwrap().as_bytes(),
        )
    }

    #[test]
    fn encrypted_pem_round_trips_in_cosigns_layout() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_encrypted_pem(b"correct horse").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let json = sealed_json(&pem);
        assert_eq!(json["kdf"]["name"], "scrypt");
        assert_eq!(json["kdf"]["params"]["N"], 65536);
        assert_eq!(json["kdf"]["params"]["r"], 8);
        assert_eq!(json["kdf"]["params"]["p"], 1);
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        assert_eq!(b64(&json["kdf"]["salt"]).len(), 32);
        assert_eq!(b64(&json["cipher"]["nonce"]).len(), 24);
        // The secretbox is the 16-byte tag and the PKCS#8, as long as it.
        assert_eq!(b64(&json["ciphertext"]).len(), key.pkcs8.len() + 16);

        let opened = PrivateKey::from_pem_with_password(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(opened.public_key(), key.public_key());
        assert_eq!(opened.pkcs8, key.pkcs8);
        // Fresh salt and nonce each time.
        let again = key.to_encrypted_pem(b"correct horse").unwrap();
        assert_ne!(sealed_json(&again)["kdf"]["salt"], json["kdf"]["salt"]);
        assert_ne!(
            sealed_json(&again)["cipher"]["nonce"],
            json["cipher"]["nonce"]
        );
    }

    #[test]
    fn older_cosign_label_and_empty_password_are_read() {
        let key = PrivateKey::generate().unwrap();
        let sealed = seal(&key.pkcs8, b"", 15).unwrap();
        let pem = to_pem("ENCRYPTED COSIGN PRIVATE KEY", &sealed);
        let opened = PrivateKey::from_pem_with_password(&pem, Some(b"")).unwrap();
        assert_eq!(opened.public_key(), key.public_key());
        assert_eq!(
            PrivateKey::from_pem_with_password(&pem, Some(b"x")).unwrap_err(),
            KeyError::WrongPassword
        );
    }

    #[test]
    fn encrypted_key_without_password_asks_for_cosign_password() {
        let pem = PrivateKey::generate()
            .unwrap()
            .to_encrypted_pem(b"pw")
            .unwrap();
        let err = PrivateKey::from_pem(&pem).unwrap_err();
        assert_eq!(err, KeyError::PasswordRequired);
        assert!(err.to_string().contains("`COSIGN_PASSWORD`"));
        // A plain key ignores a password.
        let key = PrivateKey::generate().unwrap();
        let plain = PrivateKey::from_pem_with_password(&key.to_pem(), Some(b"pw")).unwrap();
        assert_eq!(plain.public_key(), key.public_key());
    }

    #[test]
    fn wrong_password_and_changed_ciphertext_are_refused() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_encrypted_pem(b"right").unwrap();
        let err = PrivateKey::from_pem_with_password(&pem, Some(b"wrong")).unwrap_err();
        assert_eq!(err, KeyError::WrongPassword);
        assert!(err
            .to_string()
            .starts_with("wrong password or corrupted key"));

        let mut json = sealed_json(&pem);
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut boxed = b64.decode(json["ciphertext"].as_str().unwrap()).unwrap();
        let last = boxed.len() - 1;
        boxed[last] ^= 1;
        json["ciphertext"] = b64.encode(&boxed).into();
        assert_eq!(
            PrivateKey::from_pem_with_password(&cosign_pem(&json), Some(b"right")).unwrap_err(),
            KeyError::WrongPassword
        );
        // Another salt derives another key: refused the same way.
        let mut json = sealed_json(&pem);
        json["kdf"]["salt"] = b64.encode([7u8; 32]).into();
        assert_eq!(
            PrivateKey::from_pem_with_password(&cosign_pem(&json), Some(b"right")).unwrap_err(),
            KeyError::WrongPassword
        );
    }

    #[test]
    fn scrypt_costs_outside_the_bound_are_refused_before_deriving() {
        let pem = PrivateKey::generate()
            .unwrap()
            .to_encrypted_pem(b"pw")
            .unwrap();
        // N = 2^40 would need 128 TiB: refused at once, like every cost
        // outside N in 2^15..=2^17, r = 8, p = 1.
        for (n, r, p) in [
            (1u64 << 40, 8u64, 1u64),
            (1 << 18, 8, 1),
            (1 << 14, 8, 1),
            (0, 8, 1),
            (65535, 8, 1),
            (98304, 8, 1),
            (65536, 16, 1),
            (65536, 0, 1),
            (65536, 8, 2),
        ] {
            let mut json = sealed_json(&pem);
            json["kdf"]["params"] = serde_json::json!({ "N": n, "r": r, "p": p });
            let err =
                PrivateKey::from_pem_with_password(&cosign_pem(&json), Some(b"pw")).unwrap_err();
            assert_eq!(err, KeyError::ScryptCost { n, r, p }, "N={n} r={r} p={p}");
            assert!(err.to_string().contains(&format!("N={n}")));
        }
    }

    #[test]
    fn encrypted_pems_not_in_cosigns_format_are_refused() {
        let pem = PrivateKey::generate()
            .unwrap()
            .to_encrypted_pem(b"pw")
            .unwrap();
        type Change = fn(&mut serde_json::Value);
        let changes: [(&str, Change); 6] = [
            ("key derivation `pbkdf2`", |j| {
                j["kdf"]["name"] = "pbkdf2".into()
            }),
            ("cipher `aes-gcm`", |j| {
                j["cipher"]["name"] = "aes-gcm".into()
            }),
            ("nonce is not 24 bytes", |j| {
                j["cipher"]["nonce"] = base64::engine::general_purpose::STANDARD
                    .encode([0u8; 12])
                    .into()
            }),
            ("salt is empty", |j| j["kdf"]["salt"] = "".into()),
            ("ciphertext is not base64", |j| {
                j["ciphertext"] = "!!".into()
            }),
            ("not cosign's json", |j| {
                j.as_object_mut().unwrap().remove("cipher");
            }),
        ];
        for (expected, change) in changes {
            let mut json = sealed_json(&pem);
            change(&mut json);
            let err =
                PrivateKey::from_pem_with_password(&cosign_pem(&json), Some(b"pw")).unwrap_err();
            assert!(
                matches!(&err, KeyError::EncryptedFormat { reason } if reason.contains(expected)),
                "{expected}: {err}"
            );
        }
        let not_json = to_pem(COSIGN_ENCRYPTED_LABELS[1], b"not json");
        assert!(matches!(
            PrivateKey::from_pem_with_password(&not_json, Some(b"pw")),
            Err(KeyError::EncryptedFormat { .. })
        ));
    }

    #[test]
    fn generate_files_with_a_password_writes_cosigns_encrypted_key() {
        let dir = std::env::temp_dir().join(format!(
            "sluice-fleet-keys-encrypted-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (k, p, public) =
            generate_files_with_password(&dir.join("cosign"), Some(b"pw")).unwrap();
        let pem = std::fs::read_to_string(&k).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let key = PrivateKey::from_pem_with_password(&pem, Some(b"pw")).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(
            PublicKey::from_pem(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            public
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
