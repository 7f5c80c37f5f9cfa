//! OCI image layouts (image-spec `image-layout.md`): `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>` in one folder, the form in which a
//! static HTTP server or CDN carries Sluice artifacts. Tags are the
//! `org.opencontainers.image.ref.name` annotation of `index.json`'s entries.
//!
//! [`LayoutDir`] writes and reads such a folder on disk (`sluice push` and
//! `sluice sign` to `oci:DIR:TAG`, [`LayoutRef`]). Blobs are written before
//! the manifest that names them and `index.json` last, each file through a
//! temporary file renamed into place, so a server serving the folder never
//! serves half a file nor a tag whose blobs are not there yet.

use crate::artifact::{sha256_digest, Descriptor, MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The annotation that tags a manifest in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Media type of an image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The `oci-layout` file's content.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest `index.json` read, in bytes.
pub const MAX_INDEX_BYTES: u64 = 4 << 20;

/// `index.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// [`INDEX_MEDIA_TYPE`].
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests in the layout.
    pub manifests: Vec<IndexEntry>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One manifest of `index.json`: a descriptor with the manifest's
/// `artifactType` when it has one. Fields Sluice does not know (a
/// `platform` that another tool wrote) are kept when the index is
/// rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The manifest's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// The manifest's length in bytes.
    pub size: u64,
    /// The manifest's `artifactType`, if any.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// Annotations, the tag among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Other fields, as read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl IndexEntry {
    /// The entry of the manifest `bytes`: its `mediaType` (an OCI image
    /// manifest when it names none), digest, size and `artifactType`.
    pub fn of_manifest(bytes: &[u8]) -> IndexEntry {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            #[serde(rename = "artifactType")]
            artifact_type: Option<String>,
        }
        let head: Option<Head> = serde_json::from_slice(bytes).ok();
        let (media_type, artifact_type) = match head {
            Some(h) => (h.media_type, h.artifact_type),
            None => (None, None),
        };
        IndexEntry {
            media_type: media_type.unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_owned()),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type,
            annotations: None,
            other: BTreeMap::new(),
        }
    }

    /// The tag this entry carries, if any.
    pub fn tag(&self) -> Option<&str> {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .map(String::as_str)
    }
}

impl From<Descriptor> for IndexEntry {
    fn from(d: Descriptor) -> IndexEntry {
        IndexEntry {
            media_type: d.media_type,
            digest: d.digest,
            size: d.size,
            artifact_type: None,
            annotations: d.annotations,
            other: BTreeMap::new(),
        }
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests: Vec::new(),
            annotations: None,
        }
    }

    /// Parses `index.json`.
    pub fn parse(bytes: &[u8]) -> Result<Index, String> {
        let index: Index = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if index.schema_version != 2 {
            return Err(format!(
                "its schemaVersion is `{}`, not 2",
                index.schema_version
            ));
        }
        Ok(index)
    }

    /// The entry of the manifest tagged `tag`, the last one when several
    /// are.
    pub fn find(&self, tag: &str) -> Option<&IndexEntry> {
        self.manifests.iter().rev().find(|d| d.tag() == Some(tag))
    }

    /// Tags `entry` as `tag`, untagging any manifest tagged so before.
    pub fn set(&mut self, tag: &str, entry: impl Into<IndexEntry>) {
        let mut entry = entry.into();
        self.manifests.retain(|d| d.tag() != Some(tag));
        entry
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
        self.manifests.push(entry);
    }

    /// The JSON bytes, pretty-printed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// `oci:DIR:TAG`, skopeo's name for the manifest tagged `TAG` in the image
/// layout in the local folder `DIR` (split at the last `:`; the tag is
/// required).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    dir: PathBuf,
    tag: String,
}

impl LayoutRef {
    /// Whether `text` is meant as a layout reference: `oci:` but not
    /// `oci://`.
    pub fn is_layout(text: &str) -> bool {
        text.starts_with("oci:") && !text.starts_with("oci://")
    }

    /// Parses `oci:DIR:TAG`.
    pub fn parse(text: &str) -> Result<LayoutRef, LayoutError> {
        let bad = |reason: &str| LayoutError::Reference {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix("oci:")
            .filter(|_| Self::is_layout(text))
            .ok_or_else(|| bad("it does not start with `oci:`"))?;
        let (dir, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("it names no `:TAG`"))?;
        if dir.is_empty() {
            return Err(bad("it names no folder"));
        }
        if !crate::registry::is_tag(tag) {
            return Err(bad(
                "the tag is not 1 to 128 of `A-Za-z0-9_.-`, starting with a letter, digit or `_`",
            ));
        }
        Ok(LayoutRef {
            dir: PathBuf::from(dir),
            tag: tag.to_owned(),
        })
    }

    /// The layout folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The same folder at another tag (a signature's `sha256-<hex>.sig`).
    pub fn at_tag(&self, tag: &str) -> LayoutRef {
        LayoutRef {
            dir: self.dir.clone(),
            tag: tag.to_owned(),
        }
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}:{}", self.dir.display(), self.tag)
    }
}

/// A manifest read from a layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// The manifest's bytes, as stored.
    pub bytes: Vec<u8>,
}

/// An image layout in a local folder, written and read as a store.
#[derive(Clone, Debug)]
pub struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    /// The layout in `root`; nothing is read or written yet.
    pub fn new(root: impl Into<PathBuf>) -> LayoutDir {
        LayoutDir { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds blob `digest` (`sha256:HEX`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        if !crate::registry::is_sha256_digest(digest) {
            return Err(LayoutError::Invalid {
                path: self.root.clone(),
                reason: format!("`{digest}` is not a sha256 digest"),
            });
        }
        Ok(self
            .root
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]))
    }

    /// The index, or an empty one when the folder holds none yet.
    pub fn index(&self) -> Result<Index, LayoutError> {
        let path = self.root.join("index.json");
        match read_limited(&path, MAX_INDEX_BYTES) {
            Ok(bytes) => Index::parse(&bytes).map_err(|reason| LayoutError::Invalid {
                path,
                reason: format!("not an OCI image index: {reason}"),
            }),
            Err(LayoutError::Missing { .. }) => Ok(Index::new()),
            Err(e) => Err(e),
        }
    }

    /// Creates the folder, `oci-layout` and `blobs/sha256` when missing; a
    /// folder that is something else than an image layout is refused.
    pub fn init(&self) -> Result<(), LayoutError> {
        let blobs = self.root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| io_error(&blobs, e))?;
        let marker = self.root.join("oci-layout");
        match read_limited(&marker, 4096) {
            Ok(bytes) => {
                let version = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["imageLayoutVersion"].as_str().map(str::to_owned));
                match version {
                    Some(v) if v.starts_with("1.") => Ok(()),
                    _ => Err(LayoutError::Invalid {
                        path: marker,
                        reason: "it names no `imageLayoutVersion` 1.x".to_owned(),
                    }),
                }
            }
            Err(LayoutError::Missing { .. }) => write_atomic(&marker, OCI_LAYOUT.as_bytes()),
            Err(e) => Err(e),
        }
    }

    /// Writes the blob `bytes` under its digest (nothing when a file with
    /// those bytes is there already); the digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, LayoutError> {
        self.init()?;
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        let present =
            read_limited(&path, bytes.len() as u64).is_ok_and(|old| sha256_digest(&old) == digest);
        if !present {
            write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Writes the manifest `bytes` as a blob and tags it `tag` in
    /// `index.json` (replaced whole), untagging the manifest tagged so
    /// before; the manifest's digest. The blobs it names go first
    /// ([`LayoutDir::put_blob`]).
    pub fn put_manifest(&self, tag: &str, bytes: &[u8]) -> Result<String, LayoutError> {
        if !crate::registry::is_tag(tag) {
            return Err(LayoutError::Invalid {
                path: self.root.clone(),
                reason: format!("`{tag}` is not a tag"),
            });
        }
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(LayoutError::TooLarge {
                path: self.root.clone(),
                max: MAX_MANIFEST_BYTES as u64,
            });
        }
        let entry = IndexEntry::of_manifest(bytes);
        if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes).is_err() {
            return Err(LayoutError::Invalid {
                path: self.root.clone(),
                reason: "the manifest is not a JSON object".to_owned(),
            });
        }
        let digest = self.put_blob(bytes)?;
        let mut index = self.index()?;
        index.set(tag, entry);
        write_atomic(&self.root.join("index.json"), &index.to_bytes())?;
        Ok(digest)
    }

    /// The manifest tagged `tag`, checked against its digest; `None` when
    /// the index tags none so.
    pub fn manifest(&self, tag: &str) -> Result<Option<StoredManifest>, LayoutError> {
        let Some(entry) = self.index()?.find(tag).cloned() else {
            return Ok(None);
        };
        let bytes = self.blob(&entry.digest, MAX_MANIFEST_BYTES as u64)?;
        Ok(Some(StoredManifest {
            digest: entry.digest,
            bytes,
        }))
    }

    /// The blob `digest`, at most `max` bytes, checked against its digest.
    pub fn blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest)?;
        let bytes = read_limited(&path, max)?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(LayoutError::Digest {
                path,
                digest: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// What can go wrong with a layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Not a reference `oci:DIR:TAG`.
    Reference {
        /// The reference as written.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A file is not there.
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        reason: String,
    },
    /// A file is not what a layout holds there.
    Invalid {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blob does not hash to its name.
    Digest {
        /// The blob's file.
        path: PathBuf,
        /// Its name.
        digest: String,
        /// What it hashes to.
        actual: String,
    },
    /// A file is larger than allowed.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        max: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Reference { text, reason } => write!(
                f,
                "`{text}` is not an image layout reference `oci:DIR:TAG`: {reason}"
            ),
            LayoutError::Missing { path } => write!(f, "`{}` does not exist", path.display()),
            LayoutError::Io { path, reason } => write!(f, "`{}`: {reason}", path.display()),
            LayoutError::Invalid { path, reason } => write!(f, "`{}`: {reason}", path.display()),
            LayoutError::Digest {
                path,
                digest,
                actual,
            } => write!(
                f,
                "the blob `{digest}` (`{}`) hashes to `{actual}`",
                path.display()
            ),
            LayoutError::TooLarge { path, max } => {
                write!(f, "`{}` has more than {max} bytes", path.display())
            }
        }
    }
}

impl std::error::Error for LayoutError {}

fn io_error(path: &Path, e: std::io::Error) -> LayoutError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LayoutError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        LayoutError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// The file at `path`, refused when it has more than `max` bytes.
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, LayoutError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() as u64 > max {
        return Err(LayoutError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// renamed into place: a reader sees the old file or the new one, whole.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // created exclusively: a link planted under the temporary name is not
    // followed
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_and_moved() {
        let mut index = Index::new();
        let a = Descriptor::of("m", b"a");
        let b = Descriptor::of("m", b"b");
        index.set("v1", a.clone());
        index.set("v2", a.clone());
        index.set("v1", b.clone());
        assert_eq!(index.find("v1").unwrap().digest, b.digest);
        assert_eq!(index.find("v2").unwrap().digest, a.digest);
        assert_eq!(index.manifests.len(), 2);
        assert!(index.find("v3").is_none());
        let back = Index::parse(&index.to_bytes()).unwrap();
        assert_eq!(back, index);
        assert!(Index::parse(b"{\"schemaVersion\":1,\"manifests\":[]}").is_err());
        assert!(Index::parse(b"[]").is_err());
    }

    #[test]
    fn unknown_entry_fields_survive_a_rewrite() {
        let text = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":3,"platform":{"os":"linux","architecture":"amd64"},"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#;
        let mut index = Index::parse(text).unwrap();
        index.set("v2", Descriptor::of("m", b"x"));
        let back: serde_json::Value = serde_json::from_slice(&index.to_bytes()).unwrap();
        assert_eq!(back["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(
            back["manifests"][0]["annotations"][REF_NAME_ANNOTATION],
            "v1"
        );
        assert_eq!(
            back["manifests"][1]["annotations"][REF_NAME_ANNOTATION],
            "v2"
        );
    }

    #[test]
    fn layout_references() {
        let r = LayoutRef::parse("oci:/srv/www/policies/payments:v1").unwrap();
        assert_eq!(r.dir(), Path::new("/srv/www/policies/payments"));
        assert_eq!(r.tag(), "v1");
        assert_eq!(r.to_string(), "oci:/srv/www/policies/payments:v1");
        // Split at the last `:`, as skopeo does.
        let r = LayoutRef::parse("oci:relative/a:b:v2").unwrap();
        assert_eq!(r.dir(), Path::new("relative/a:b"));
        assert_eq!(r.tag(), "v2");
        assert_eq!(r.at_tag("x").tag(), "x");
        assert!(LayoutRef::is_layout("oci:dir:v1"));
        assert!(!LayoutRef::is_layout("oci://host/repo:v1"));
        for bad in [
            "oci:dir",
            "oci::v1",
            "oci:dir:",
            "oci:dir:-x",
            "oci://h/r:v1",
            "dir:v1",
        ] {
            let e = LayoutRef::parse(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("`{bad}` is not an image layout reference")),
                "{e}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_a_temporary_name_is_not_written_through() {
        let scratch = Scratch::new("planted");
        let layout = LayoutDir::new(scratch.0.join("l"));
        layout.init().unwrap();
        let victim = scratch.0.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        for n in 0..2000 {
            let name = format!(".index.json.tmp-{}-{n}", std::process::id());
            std::os::unix::fs::symlink(&victim, layout.root().join(name)).unwrap();
        }
        let _ = layout.put_manifest("v1", &manifest(None, b"layer"));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(layout.root().join("index.json"))
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false));
    }

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sluice-layout-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn manifest(artifact_type: Option<&str>, layer: &[u8]) -> Vec<u8> {
        crate::artifact::Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            artifact_type: artifact_type.map(str::to_owned),
            config: Descriptor::of(
                crate::artifact::EMPTY_MEDIA_TYPE,
                crate::artifact::EMPTY_BLOB,
            ),
            layers: vec![Descriptor::of("application/octet-stream", layer)],
            annotations: None,
        }
        .to_bytes()
    }

    #[test]
    fn a_layout_is_created_written_and_read_back() {
        let scratch = Scratch::new("store");
        let dir = scratch.0.join("a/b");
        let layout = LayoutDir::new(&dir);
        assert_eq!(layout.index().unwrap(), Index::new());
        assert_eq!(layout.manifest("v1").unwrap(), None);

        let layer = b"layer bytes".as_slice();
        let layer_digest = layout.put_blob(layer).unwrap();
        assert_eq!(layer_digest, sha256_digest(layer));
        assert_eq!(
            std::fs::read_to_string(dir.join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        let path = layout.blob_path(&layer_digest).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), layer);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        layout.put_blob(layer).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "a blob already there is not written again"
        );

        let m1 = manifest(Some("application/vnd.sluice.policy.v1"), layer);
        let d1 = layout.put_manifest("v1", &m1).unwrap();
        assert_eq!(d1, sha256_digest(&m1));
        let index = layout.index().unwrap();
        let entry = index.find("v1").unwrap();
        assert_eq!(entry.media_type, MANIFEST_MEDIA_TYPE);
        assert_eq!(entry.size, m1.len() as u64);
        assert_eq!(
            entry.artifact_type.as_deref(),
            Some("application/vnd.sluice.policy.v1")
        );
        let back = layout.manifest("v1").unwrap().unwrap();
        assert_eq!(
            (back.digest.as_str(), back.bytes.as_slice()),
            (d1.as_str(), m1.as_slice())
        );

        // A second tag, then moving the first: one entry per tag, and the
        // index on disk is the whole new one, with no temporary file left.
        let m2 = manifest(None, b"other");
        let d2 = layout.put_manifest("v2", &m2).unwrap();
        layout.put_manifest("v1", &m2).unwrap();
        let index = Index::parse(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(index.find("v1").unwrap().digest, d2);
        assert_eq!(index.find("v1").unwrap().artifact_type, None);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        assert_eq!(layout.blob(&d1, 1 << 16).unwrap(), m1, "old manifests stay");
    }

    #[test]
    fn bad_content_is_refused_and_a_damaged_blob_rewritten() {
        let scratch = Scratch::new("bad");
        let layout = LayoutDir::new(&scratch.0);
        let digest = layout.put_blob(b"good").unwrap();
        let path = layout.blob_path(&digest).unwrap();
        std::fs::write(&path, b"evil").unwrap();
        assert!(matches!(
            layout.blob(&digest, 100),
            Err(LayoutError::Digest { actual, .. }) if actual == sha256_digest(b"evil")
        ));
        assert!(matches!(
            layout.blob(&digest, 2),
            Err(LayoutError::TooLarge { max: 2, .. })
        ));
        layout.put_blob(b"good").unwrap();
        assert_eq!(layout.blob(&digest, 100).unwrap(), b"good");

        assert!(matches!(
            layout.blob("sha256:nothex", 100),
            Err(LayoutError::Invalid { .. })
        ));
        let missing = sha256_digest(b"never written");
        assert!(matches!(
            layout.blob(&missing, 100),
            Err(LayoutError::Missing { .. })
        ));
        assert!(matches!(
            layout.put_manifest("bad tag", b"{}"),
            Err(LayoutError::Invalid { .. })
        ));
        assert!(matches!(
            layout.put_manifest("v1", b"[1]"),
            Err(LayoutError::Invalid { .. })
        ));

        std::fs::write(
            scratch.0.join("index.json"),
            b"{\"schemaVersion\":1,\"manifests\":[]}",
        )
        .unwrap();
        let e = layout.manifest("v1").unwrap_err();
        assert!(e.to_string().contains("not an OCI image index"), "{e}");

        std::fs::write(scratch.0.join("oci-layout"), b"{}").unwrap();
        assert!(matches!(
            layout.put_blob(b"x"),
            Err(LayoutError::Invalid { .. })
        ));
    }
}
