//! The Sluice artifact as data: an OCI image manifest (image-spec 1.1) whose
//! config is the empty descriptor and whose layers are the compiled bundle
//! and its policy source. Building gives the exact manifest bytes (their
//! sha256 is the artifact's digest) and the blobs; verifying checks what a
//! registry handed back against the digest it was asked for. No I/O here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sluice_runtime::bundle::FORMAT_VERSION;
use sluice_runtime::{AlignedBytes, Bundle};

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The manifest's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.sluice.policy.v1";
/// Media type of the empty config descriptor (image-spec 1.1).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config blob: the two bytes `{}`.
pub const EMPTY_BLOB: &[u8] = b"{}";
/// Digest of [`EMPTY_BLOB`].
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// Media type of the policy source layer.
pub const SOURCE_MEDIA_TYPE: &str = "application/vnd.sluice.policy.source.v1";
/// Annotation: the bundle format version (decimal).
pub const FORMAT_VERSION_ANNOTATION: &str = "io.sluice.format-version";
/// Annotation: the bundle's content hash, 16 lowercase hex digits, as
/// `sluice inspect` prints it.
pub const BUNDLE_HASH_ANNOTATION: &str = "io.sluice.bundle-hash";
/// Annotation: the version of Sluice that built the artifact.
pub const VERSION_ANNOTATION: &str = "io.sluice.version";
/// Annotation: when the artifact was built (RFC 3339), optional.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// Annotation on a layer: its file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Largest artifact [`CheckedManifest`] accepts by default: manifest plus
/// blobs, 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Largest manifest accepted, in bytes (a Sluice manifest is well under 2 KiB).
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// Media type of the compiled bundle layer for a bundle format version,
/// `application/vnd.sluice.bundle.v<N>`.
pub fn bundle_media_type(version: u32) -> String {
    format!("application/vnd.sluice.bundle.v{version}")
}

/// `sha256:<64 lowercase hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", hex(d.as_ref()))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The content's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// The content's length in bytes.
    pub size: u64,
    /// Annotations, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    /// The descriptor of `bytes` with `media_type`, without annotations.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: None,
        }
    }
}

/// An OCI image manifest, with the fields Sluice writes and reads, in the
/// order they are serialized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact's type ([`ARTIFACT_TYPE`] for a Sluice artifact).
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The config blob's descriptor.
    pub config: Descriptor,
    /// The layers' descriptors.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// The manifest's JSON bytes (compact; fields in declaration order,
    /// annotations sorted by key), which are what gets pushed and hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, integers and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One blob: its descriptor and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The blob's descriptor, as it appears in the manifest.
    pub descriptor: Descriptor,
    /// The blob's bytes.
    pub bytes: Vec<u8>,
}

/// A built Sluice artifact, ready to push: blobs first, then the manifest
/// bytes exactly as they are here.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The manifest as data.
    pub manifest: Manifest,
    /// The manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of `manifest_bytes`: the artifact's digest.
    pub digest: String,
    /// The config blob ([`EMPTY_BLOB`]).
    pub config: Blob,
    /// The compiled bundle layer.
    pub bundle: Blob,
    /// The policy source layer.
    pub source: Blob,
}

impl Artifact {
    /// The blobs in push order: config, bundle, source.
    pub fn blobs(&self) -> [&Blob; 3] {
        [&self.config, &self.bundle, &self.source]
    }
}

/// Builds the artifact of a compiled bundle and its policy source. The
/// bundle must load (its content hash becomes an annotation). `created` is
/// an RFC 3339 time for `org.opencontainers.image.created`, left out when
/// `None` (the manifest, and so the digest, then depends only on the
/// inputs and the Sluice version).
pub fn build(
    bundle: &[u8],
    source: &[u8],
    created: Option<&str>,
) -> Result<Artifact, ArtifactError> {
    let aligned = AlignedBytes::new(bundle);
    let hash = Bundle::from_bytes(aligned.as_bytes())
        .map_err(|e| ArtifactError::BundleLoad {
            reason: e.to_string(),
        })?
        .hash();
    let mut annotations = BTreeMap::new();
    annotations.insert(
        FORMAT_VERSION_ANNOTATION.to_string(),
        FORMAT_VERSION.to_string(),
    );
    annotations.insert(BUNDLE_HASH_ANNOTATION.to_string(), format!("{hash:016x}"));
    annotations.insert(
        VERSION_ANNOTATION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    if let Some(created) = created {
        annotations.insert(CREATED_ANNOTATION.to_string(), created.to_string());
    }
    let titled = |media_type: &str, bytes: &[u8], title: &str| {
        let mut d = Descriptor::of(media_type, bytes);
        d.annotations = Some(BTreeMap::from([(
            TITLE_ANNOTATION.to_string(),
            title.to_string(),
        )]));
        Blob {
            descriptor: d,
            bytes: bytes.to_vec(),
        }
    };
    let config = Blob {
        descriptor: Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB),
        bytes: EMPTY_BLOB.to_vec(),
    };
    let bundle = titled(&bundle_media_type(FORMAT_VERSION), bundle, "bundle.bin");
    let source = titled(SOURCE_MEDIA_TYPE, source, "policy.sluice");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: config.descriptor.clone(),
        layers: vec![bundle.descriptor.clone(), source.descriptor.clone()],
        annotations: Some(annotations),
    };
    let manifest_bytes = manifest.to_bytes();
    let digest = sha256_digest(&manifest_bytes);
    Ok(Artifact {
        manifest,
        manifest_bytes,
        digest,
        config,
        bundle,
        source,
    })
}

/// A fetched manifest whose digest, shape, media types and sizes were
/// checked: the blobs it names may now be fetched (sizes are known before
/// download) and handed to [`CheckedManifest::verify_blobs`]. Its bundle
/// format version may be one this Sluice does not read
/// ([`CheckedManifest::is_readable`]); then only its source layer is of use
/// ([`CheckedManifest::verify_source`]).
#[derive(Clone, Debug)]
pub struct CheckedManifest {
    manifest: Manifest,
    digest: String,
    bundle_hash: String,
    format_version: u32,
}

impl CheckedManifest {
    /// Parses and checks manifest `bytes` fetched for `expected_digest`
    /// (the pinned digest, or the one the registry said the tag points
    /// at). The manifest plus its blobs must total at most `max_bytes`.
    pub fn parse(
        bytes: &[u8],
        expected_digest: &str,
        max_bytes: u64,
    ) -> Result<CheckedManifest, ArtifactError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ArtifactError::TooLarge {
                what: "manifest",
                size: bytes.len() as u64,
                max: MAX_MANIFEST_BYTES as u64,
            });
        }
        let actual = sha256_digest(bytes);
        if actual != expected_digest {
            return Err(ArtifactError::DigestMismatch {
                what: "manifest".to_string(),
                expected: expected_digest.to_string(),
                actual,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ArtifactError::Malformed {
                reason: e.to_string(),
            })?;
        let wrong =
            |field: &'static str, expected: &str, found: Option<&str>| ArtifactError::MediaType {
                field,
                expected: expected.to_string(),
                found: found.unwrap_or("").to_string(),
            };
        if manifest.schema_version != 2 {
            return Err(ArtifactError::Malformed {
                reason: format!("schemaVersion is `{}`, not 2", manifest.schema_version),
            });
        }
        if manifest.media_type.as_deref() != Some(MANIFEST_MEDIA_TYPE) {
            return Err(wrong(
                "mediaType",
                MANIFEST_MEDIA_TYPE,
                manifest.media_type.as_deref(),
            ));
        }
        if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
            return Err(wrong(
                "artifactType",
                ARTIFACT_TYPE,
                manifest.artifact_type.as_deref(),
            ));
        }
        if manifest.config.media_type != EMPTY_MEDIA_TYPE {
            return Err(wrong(
                "config",
                EMPTY_MEDIA_TYPE,
                Some(&manifest.config.media_type),
            ));
        }
        let annotation = |key: &str| {
            manifest
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .cloned()
        };
        let version =
            annotation(FORMAT_VERSION_ANNOTATION).ok_or(ArtifactError::MissingAnnotation {
                key: FORMAT_VERSION_ANNOTATION,
            })?;
        let format_version = parse_version(&version).ok_or(ArtifactError::FormatVersion {
            found: version,
            supported: FORMAT_VERSION,
        })?;
        let bundle_hash =
            annotation(BUNDLE_HASH_ANNOTATION).ok_or(ArtifactError::MissingAnnotation {
                key: BUNDLE_HASH_ANNOTATION,
            })?;
        if manifest.layers.len() != 2 {
            return Err(ArtifactError::Malformed {
                reason: format!("it has {} layers, not 2", manifest.layers.len()),
            });
        }
        let bundle_type = bundle_media_type(format_version);
        if manifest.layers[0].media_type != bundle_type {
            return Err(wrong(
                "layers[0]",
                &bundle_type,
                Some(&manifest.layers[0].media_type),
            ));
        }
        if manifest.layers[1].media_type != SOURCE_MEDIA_TYPE {
            return Err(wrong(
                "layers[1]",
                SOURCE_MEDIA_TYPE,
                Some(&manifest.layers[1].media_type),
            ));
        }
        let total = manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
            .fold(bytes.len() as u64, |t, d| t.saturating_add(d.size));
        if total > max_bytes {
            return Err(ArtifactError::TooLarge {
                what: "artifact",
                size: total,
                max: max_bytes,
            });
        }
        Ok(CheckedManifest {
            manifest,
            digest: actual,
            bundle_hash,
            format_version,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its digest (the one it was fetched by, and that its bytes have).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The bundle's content hash from the annotation (16 hex digits).
    pub fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    /// The bundle format version the artifact holds.
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// Whether this Sluice reads its bundle format version.
    pub fn is_readable(&self) -> bool {
        self.format_version == FORMAT_VERSION
    }

    /// The error for a bundle format version this Sluice does not read.
    pub fn format_error(&self) -> ArtifactError {
        ArtifactError::FormatVersion {
            found: self.format_version.to_string(),
            supported: FORMAT_VERSION,
        }
    }

    /// The config descriptor.
    pub fn config(&self) -> &Descriptor {
        &self.manifest.config
    }

    /// The bundle layer's descriptor.
    pub fn bundle(&self) -> &Descriptor {
        &self.manifest.layers[0]
    }

    /// The policy source layer's descriptor.
    pub fn source(&self) -> &Descriptor {
        &self.manifest.layers[1]
    }

    /// Checks the fetched blobs against their descriptors (size, then
    /// digest), that the format version is this Sluice's, that the bundle loads and that its content hash is the
    /// annotated one. The config is checked too when given (it must be
    /// [`EMPTY_BLOB`] by its digest anyway).
    pub fn verify_blobs(
        self,
        config: Option<&[u8]>,
        bundle: &[u8],
        source: &[u8],
    ) -> Result<VerifiedArtifact, ArtifactError> {
        if !self.is_readable() {
            return Err(self.format_error());
        }
        if let Some(config) = config {
            check_blob("config", self.config(), config)?;
        }
        if self.config().digest != EMPTY_DIGEST {
            return Err(ArtifactError::DigestMismatch {
                what: "config".to_string(),
                expected: EMPTY_DIGEST.to_string(),
                actual: self.config().digest.clone(),
            });
        }
        check_blob("bundle layer", self.bundle(), bundle)?;
        check_blob("source layer", self.source(), source)?;
        let aligned = AlignedBytes::new(bundle);
        let hash = Bundle::from_bytes(aligned.as_bytes())
            .map_err(|e| ArtifactError::BundleLoad {
                reason: e.to_string(),
            })?
            .hash();
        let hash = format!("{hash:016x}");
        if hash != self.bundle_hash {
            return Err(ArtifactError::BundleHash {
                annotated: self.bundle_hash,
                actual: hash,
            });
        }
        Ok(VerifiedArtifact {
            digest: self.digest,
            bundle_hash: hash,
            bundle: aligned,
            source: source.to_vec(),
        })
    }
}

impl CheckedManifest {
    /// Checks only the fetched source layer against its descriptor: for an
    /// artifact whose bundle format version this Sluice does not read, and
    /// whose signed source is compiled instead.
    pub fn verify_source(self, source: &[u8]) -> Result<VerifiedSource, ArtifactError> {
        check_blob("source layer", self.source(), source)?;
        Ok(VerifiedSource {
            digest: self.digest,
            format_version: self.format_version,
            source: source.to_vec(),
        })
    }
}

/// A decimal format version without sign or leading zeros.
fn parse_version(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn check_blob(what: &str, d: &Descriptor, bytes: &[u8]) -> Result<(), ArtifactError> {
    if bytes.len() as u64 != d.size {
        return Err(ArtifactError::SizeMismatch {
            what: what.to_string(),
            expected: d.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_digest(bytes);
    if actual != d.digest {
        return Err(ArtifactError::DigestMismatch {
            what: what.to_string(),
            expected: d.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// A fetched artifact whose every byte was checked.
#[derive(Clone, Debug)]
pub struct VerifiedArtifact {
    /// The manifest digest.
    pub digest: String,
    /// The bundle's content hash, 16 hex digits.
    pub bundle_hash: String,
    /// The bundle bytes, aligned for [`Bundle::from_bytes`].
    pub bundle: AlignedBytes,
    /// The policy source bytes.
    pub source: Vec<u8>,
}

/// The source layer of an artifact whose bundle this Sluice cannot read,
/// checked against its descriptor.
#[derive(Clone, Debug)]
pub struct VerifiedSource {
    /// The manifest digest.
    pub digest: String,
    /// The artifact's bundle format version.
    pub format_version: u32,
    /// The policy source bytes.
    pub source: Vec<u8>,
}

/// Why an artifact cannot be built or was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArtifactError {
    /// Content does not have the digest it should.
    DigestMismatch {
        /// What: `manifest`, `bundle layer`, ...
        what: String,
        /// The digest asked for or named by the descriptor.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A blob's length is not its descriptor's size.
    SizeMismatch {
        /// Which blob.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// The length received.
        actual: u64,
    },
    /// The manifest is not JSON of the OCI manifest shape Sluice writes.
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A media type is not the expected one.
    MediaType {
        /// Which field: `mediaType`, `artifactType`, `config`, `layers[0]`...
        field: &'static str,
        /// The expected media type.
        expected: String,
        /// The one found (empty when absent).
        found: String,
    },
    /// A required annotation is absent.
    MissingAnnotation {
        /// Its key.
        key: &'static str,
    },
    /// The artifact holds a bundle format version this Sluice does not read.
    FormatVersion {
        /// The annotated version.
        found: String,
        /// The version this Sluice reads.
        supported: u32,
    },
    /// The artifact is larger than allowed.
    TooLarge {
        /// `manifest` or `artifact`.
        what: &'static str,
        /// Its size in bytes (manifest plus blobs for `artifact`).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The bundle layer does not load.
    BundleLoad {
        /// The runtime's reason.
        reason: String,
    },
    /// The bundle's content hash is not the annotated one.
    BundleHash {
        /// The annotated hash.
        annotated: String,
        /// The hash of the bundle received.
        actual: String,
    },
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::DigestMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "the {what} has digest `{actual}`, expected `{expected}`"
            ),
            ArtifactError::SizeMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "the {what} is {actual} bytes long, its descriptor says {expected}"
            ),
            ArtifactError::Malformed { reason } => {
                write!(f, "not a sluice artifact manifest: {reason}")
            }
            ArtifactError::MediaType {
                field,
                expected,
                found,
            } => write!(
                f,
                "the manifest's {field} media type is `{found}`, expected `{expected}`"
            ),
            ArtifactError::MissingAnnotation { key } => {
                write!(f, "the manifest lacks the `{key}` annotation")
            }
            ArtifactError::FormatVersion { found, supported } => write!(
                f,
                "the artifact holds bundle format version `{found}`, this sluice reads version {supported}"
            ),
            ArtifactError::TooLarge { what, size, max } => {
                write!(f, "the {what} is {size} bytes, more than the limit of {max}")
            }
            ArtifactError::BundleLoad { reason } => {
                write!(f, "the bundle layer does not load: {reason}")
            }
            ArtifactError::BundleHash { annotated, actual } => write!(
                f,
                "the bundle's content hash is `{actual}`, the manifest says `{annotated}`"
            ),
        }
    }
}

impl std::error::Error for ArtifactError {}
