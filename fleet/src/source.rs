//! Where a fleet keeps an artifact: a registry (`oci://HOST[:PORT]/REPO`)
//! or an OCI image layout on a plain HTTP server or CDN
//! (`https://HOST[:PORT]/PATH`), each with `:TAG` or `@sha256:HEX`.
//!
//! An image layout (image-spec `image-layout.md`) is a folder with
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`; `index.json` names
//! each tagged manifest with the annotation `org.opencontainers.image.ref.name`.
//! A signature is the manifest tagged `sha256-<hex>.sig`, as in a registry.
//! `sluice push` and `sluice sign` write layouts into a local folder
//! (`oci:DIR:TAG`, [`crate::layout`]); any static server then serves it.

use crate::registry::{OciRef, RefError};
use std::fmt;

/// A parsed source reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceRef {
    /// A repository in a registry.
    Registry(OciRef),
    /// An image layout served over HTTP(S).
    Http(HttpRef),
}

impl SourceRef {
    /// Parses `oci://...`, `https://...` or `http://...`.
    pub fn parse(text: &str) -> Result<SourceRef, RefError> {
        if text.starts_with("https://") || text.starts_with("http://") {
            HttpRef::parse(text).map(SourceRef::Http)
        } else {
            OciRef::parse(text).map(SourceRef::Registry)
        }
    }

    /// The digest pin, when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        match self {
            SourceRef::Registry(r) => r.digest(),
            SourceRef::Http(r) => r.digest(),
        }
    }

    /// Whether the reference speaks plain HTTP (`http://`, or a registry
    /// reference, whose scheme the client's `plain_http` decides).
    pub fn is_plain_http_url(&self) -> bool {
        matches!(self, SourceRef::Http(r) if r.base.starts_with("http://"))
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceRef::Registry(r) => r.fmt(f),
            SourceRef::Http(r) => r.fmt(f),
        }
    }
}

/// `http(s)://HOST[:PORT]/PATH(:TAG|@sha256:HEX)`: the image layout in the
/// folder `PATH`, and the manifest tagged `TAG` in its `index.json` or the
/// one pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRef {
    /// The layout folder's URL, ending in `/`.
    base: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl HttpRef {
    /// Parses `http(s)://HOST[:PORT]/PATH(:TAG|@sha256:HEX)`.
    pub fn parse(text: &str) -> Result<HttpRef, RefError> {
        let bad = |reason: &str| RefError::invalid(text, reason);
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| bad("it does not start with `https://` or `http://`"))?;
        let scheme_len = text.len() - rest.len();
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no folder after the host"))?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad("the host is empty or holds a character a host cannot"));
        }
        if path.contains(['?', '#', '\\']) || path.split('/').any(|p| p == "." || p == "..") {
            return Err(bad("the path may not hold `?`, `#`, `\\`, `.` or `..`"));
        }
        let last = path.rfind('/').map_or(0, |i| i + 1);
        let (folder, tag, digest) = if let Some(at) = path[last..].find('@') {
            let pin = &path[last + at + 1..];
            if !crate::registry::is_sha256_digest(pin) {
                return Err(bad("a digest pin must be `sha256:` and 64 hex digits"));
            }
            (&path[..last + at], None, Some(pin.to_owned()))
        } else if let Some(colon) = path[last..].rfind(':') {
            let tag = &path[last + colon + 1..];
            if !crate::registry::is_tag(tag) {
                return Err(bad("the tag is not 1 to 128 of `A-Za-z0-9_.-`, starting with a letter, digit or `_`"));
            }
            (&path[..last + colon], Some(tag.to_owned()), None)
        } else {
            return Err(bad("it has neither a `:TAG` nor an `@sha256:` pin"));
        };
        if folder.is_empty() || folder.ends_with('/') {
            // `PATH/:TAG` would be shown as `PATH:TAG`, which reads
            // otherwise when PATH's last part holds an `@`.
            return Err(bad("it names no folder before the tag or pin"));
        }
        Ok(HttpRef {
            base: format!("{}{host}/{folder}/", &text[..scheme_len]),
            tag,
            digest,
        })
    }

    /// The layout folder's URL, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `index.json`.
    pub fn index_url(&self) -> String {
        format!("{}index.json", self.base)
    }

    /// The URL of the blob `digest` (`sha256:HEX`).
    pub fn blob_url(&self, digest: &str) -> String {
        format!("{}blobs/{}", self.base, digest.replacen(':', "/", 1))
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest pin, when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl fmt::Display for HttpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.trim_end_matches('/'))?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn http_references_name_a_folder_and_a_tag_or_pin() {
        let r = HttpRef::parse("http://127.0.0.1:8080/policies/payments:v1").unwrap();
        assert_eq!(r.base(), "http://127.0.0.1:8080/policies/payments/");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(
            r.index_url(),
            "http://127.0.0.1:8080/policies/payments/index.json"
        );
        assert_eq!(
            r.blob_url(&format!("sha256:{HEX}")),
            format!("http://127.0.0.1:8080/policies/payments/blobs/sha256/{HEX}")
        );
        assert_eq!(r.to_string(), "http://127.0.0.1:8080/policies/payments:v1");

        let pinned = format!("https://cdn.example/p@sha256:{HEX}");
        let r = HttpRef::parse(&pinned).unwrap();
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), pinned);
        assert!(matches!(
            SourceRef::parse(&pinned).unwrap(),
            SourceRef::Http(_)
        ));
        assert!(matches!(
            SourceRef::parse("oci://r:5000/a/b:v1").unwrap(),
            SourceRef::Registry(_)
        ));
    }

    /// Found by the `artifact` fuzz target: `a@b/:v1` was read as the
    /// folder `a@b` and shown as `a@b:v1`, which reads as a bad pin.
    #[test]
    fn a_shown_reference_reads_back_the_same() {
        let bad = "http://h/x/a@b/:v1";
        assert!(HttpRef::parse(bad).is_err(), "{bad}");
        for text in [
            "http://h/x/a@b/c:v1",
            "http://h/a:b/c:v1",
            "http://[::1]:80/a//b:v1",
        ] {
            let r = HttpRef::parse(text).unwrap();
            assert_eq!(HttpRef::parse(&r.to_string()).unwrap(), r, "{text}");
        }
    }

    #[test]
    fn bad_http_references_are_refused() {
        for bad in [
            "ftp://host/p:v1",
            "https://host",
            "https:///p:v1",
            "https://host/p",
            "https://host/:v1",
            "https://host/p:",
            "https://host/p@sha256:abc",
            "https://host/../p:v1",
            "https://host/p?x=1:v1",
            "https://ho st/p:v1",
            "https://host/p/:v1",
            "https://host/p//@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(HttpRef::parse(bad).is_err(), "{bad}");
        }
    }
}
