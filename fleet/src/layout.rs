//! OCI image layouts (image-spec `image-layout.md`): `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>` in one folder, the form in which a
//! static HTTP server or CDN carries Sluice artifacts. Tags are the
//! `org.opencontainers.image.ref.name` annotation of `index.json`'s entries.

use crate::artifact::Descriptor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
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

    /// The descriptor of the manifest tagged `tag`, the last one when
    /// several are.
    pub fn find(&self, tag: &str) -> Option<&Descriptor> {
        self.manifests.iter().rev().find(|d| tag_of(d) == Some(tag))
    }

    /// Tags `descriptor` as `tag`, untagging any manifest tagged so before.
    pub fn set(&mut self, tag: &str, mut descriptor: Descriptor) {
        self.manifests.retain(|d| tag_of(d) != Some(tag));
        descriptor
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REF_NAME_ANNOTATION.to_owned(), tag.to_owned());
        self.manifests.push(descriptor);
    }

    /// The JSON bytes, pretty-printed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

fn tag_of(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .map(String::as_str)
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
}
