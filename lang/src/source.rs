//! Reading a policy from disk (one `.sluice` file, or a directory of them),
//! and turning byte offsets into [`Span`]s with lines and columns.

use crate::ast::{FileId, SourceFile, Span};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// The file extension of policy files, without the dot.
pub const EXTENSION: &str = "sluice";

/// Reads `path`: a `.sluice` file, or a directory read recursively for
/// `.sluice` files, sorted by the byte order of their relative paths.
///
/// A file given directly is read whatever its extension, and is shown as
/// `path` was given. Files found in a directory are shown by their path
/// relative to it, `/`-separated (`routes/api.sluice`). Symbolic links are
/// followed; a directory reached twice (a link cycle) is read once. A
/// leading UTF-8 byte order mark is dropped. An empty directory gives no
/// files.
///
/// Errors: the path does not exist or a file or directory cannot be read
/// (the error's kind is kept and its message names the path), or a file is
/// not UTF-8 ([`io::ErrorKind::InvalidData`], naming the file).
pub fn load(path: &Path) -> io::Result<Vec<SourceFile>> {
    let meta = std::fs::metadata(path).map_err(|e| with_path(e, path))?;
    if !meta.is_dir() {
        let display = path.to_string_lossy().into_owned();
        return Ok(vec![read_file(path, display)?]);
    }
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut visited = HashSet::new();
    walk(path, "", &mut found, &mut visited)?;
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    found
        .into_iter()
        .map(|(display, full)| read_file(&full, display))
        .collect()
}

/// Collects `.sluice` files under `dir`, with `prefix` (`""` or `a/b/`) as
/// their relative display path.
fn walk(
    dir: &Path,
    prefix: &str,
    found: &mut Vec<(String, PathBuf)>,
    visited: &mut HashSet<PathBuf>,
) -> io::Result<()> {
    // Guard against symbolic link cycles.
    let canonical = std::fs::canonicalize(dir).map_err(|e| with_path(e, dir))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| with_path(e, dir))?;
    for entry in entries {
        let entry = entry.map_err(|e| with_path(e, dir))?;
        let full = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // `metadata` follows symbolic links.
        let meta = std::fs::metadata(&full).map_err(|e| with_path(e, &full))?;
        if meta.is_dir() {
            walk(&full, &format!("{prefix}{name}/"), found, visited)?;
        } else if Path::new(&name)
            .extension()
            .is_some_and(|ext| ext == EXTENSION)
        {
            found.push((format!("{prefix}{name}"), full));
        }
    }
    Ok(())
}

/// Reads one file as UTF-8, shown as `display`.
fn read_file(full: &Path, display: String) -> io::Result<SourceFile> {
    let bytes = std::fs::read(full).map_err(|e| with_path(e, full))?;
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}` is not valid UTF-8 (invalid byte at offset {at})",
                    full.display()
                ),
            ));
        }
    };
    if text.starts_with('\u{FEFF}') {
        text.drain(..'\u{FEFF}'.len_utf8());
    }
    Ok(SourceFile {
        path: display,
        text,
    })
}

/// The same error, with a message naming `path`.
fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
}

/// Byte offsets to 1-based lines and character columns, in `O(log n)` per
/// lookup (a table of line starts; on lines that are not ASCII, character
/// counts every 256 bytes), so that spans of a large file are cheap.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Byte offset of the start of each line; the first is 0.
    line_starts: Vec<u32>,
    /// Whether each line is pure ASCII (its columns are byte distances).
    line_ascii: Vec<bool>,
    /// Number of characters before byte `256 * i`.
    chars_before_block: Vec<u32>,
    /// Length of the text in bytes.
    len: u32,
}

/// Bytes per character-count checkpoint.
const BLOCK: usize = 256;

impl LineIndex {
    /// Builds the index of `text` (one pass over its bytes).
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0u32];
        let mut line_ascii = Vec::new();
        let mut ascii = true;
        let mut chars_before_block = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut chars = 0u32;
        for (b, block) in bytes.chunks(BLOCK).enumerate() {
            chars_before_block.push(chars);
            let base = b * BLOCK;
            for (i, &byte) in block.iter().enumerate() {
                if byte == b'\n' {
                    line_starts.push(to_u32(base + i + 1));
                    line_ascii.push(ascii);
                    ascii = true;
                }
                ascii &= byte.is_ascii();
            }
            let continuations = block.iter().filter(|&&byte| is_continuation(byte)).count();
            chars = chars.saturating_add(to_u32(block.len() - continuations));
        }
        chars_before_block.push(chars);
        line_ascii.push(ascii);
        LineIndex {
            line_starts,
            line_ascii,
            chars_before_block,
            len: to_u32(bytes.len()),
        }
    }

    /// The 1-based line and character column of byte `offset` of `text`
    /// (the text this index was built from; offsets past its end are
    /// clamped to it).
    pub fn line_col(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = to_u32(offset).min(self.len);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let line_start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = if self.line_ascii.get(line - 1).copied().unwrap_or(false) {
            offset - line_start
        } else {
            self.chars_before(text, offset)
                .saturating_sub(self.chars_before(text, line_start))
        };
        (to_u32(line), column.saturating_add(1))
    }

    /// A span of bytes `start..end` in file `file` of `text`.
    pub fn span(&self, text: &str, file: FileId, start: usize, end: usize) -> Span {
        let (line, column) = self.line_col(text, start);
        Span {
            file,
            start: to_u32(start),
            end: to_u32(end.max(start)),
            line,
            column,
        }
    }

    /// Number of characters in `text[..offset]`.
    fn chars_before(&self, text: &str, offset: u32) -> u32 {
        let offset = offset as usize;
        let block = offset / BLOCK;
        let base = self.chars_before_block.get(block).copied().unwrap_or(0);
        let from = block * BLOCK;
        let extra = text
            .as_bytes()
            .get(from..offset)
            .map_or(0, |s| s.iter().filter(|&&b| !is_continuation(b)).count());
        base.saturating_add(to_u32(extra))
    }
}

/// Whether `b` continues a UTF-8 sequence (does not start a character).
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// `n` as `u32`, saturating.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sluice-lang-source-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\néé x\n\nlast";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(text, 0), (1, 1));
        assert_eq!(idx.line_col(text, 1), (1, 2));
        assert_eq!(idx.line_col(text, 2), (1, 3)); // the newline itself
        assert_eq!(idx.line_col(text, 3), (2, 1));
        // `x` is after two 2-byte characters and a space.
        let x = text.find('x').unwrap();
        assert_eq!(idx.line_col(text, x), (2, 4));
        assert_eq!(idx.line_col(text, text.find("last").unwrap()), (4, 1));
        assert_eq!(idx.line_col(text, text.len()), (4, 5));
        assert_eq!(idx.line_col(text, text.len() + 100), (4, 5));
    }

    #[test]
    fn line_col_on_long_lines_matches_naive() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(if i % 7 == 0 { "ü" } else { "a" });
            if i % 1000 == 999 {
                text.push('\n');
            }
        }
        let idx = LineIndex::new(&text);
        for (off, _) in text.char_indices().step_by(13) {
            let before = &text[..off];
            let line = before.matches('\n').count() as u32 + 1;
            let line_start = before.rfind('\n').map_or(0, |p| p + 1);
            let col = text[line_start..off].chars().count() as u32 + 1;
            assert_eq!(idx.line_col(&text, off), (line, col), "offset {off}");
        }
    }

    #[test]
    fn loads_a_directory_in_byte_order() {
        let dir = temp_dir("dir");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("B")).unwrap();
        std::fs::write(dir.join("a/z.sluice"), "# a/z").unwrap();
        std::fs::write(dir.join("a-b.sluice"), "# a-b").unwrap();
        std::fs::write(dir.join("B/x.sluice"), "# B/x").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.join("top.sluice"), "\u{FEFF}# top").unwrap();
        let files = load(&dir).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        // `-` (0x2D) sorts before `/` (0x2F); upper case before lower case.
        assert_eq!(
            paths,
            ["B/x.sluice", "a-b.sluice", "a/z.sluice", "top.sluice"]
        );
        assert_eq!(files[3].text, "# top", "byte order mark dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn loads_a_single_file_as_given() {
        let dir = temp_dir("file");
        let file = dir.join("p.sluice");
        std::fs::write(&file, "server a { port 1 }").unwrap();
        let files = load(&file).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, file.to_string_lossy());
        assert_eq!(files[0].text, "server a { port 1 }");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors() {
        let dir = temp_dir("errors");
        let missing = load(&dir.join("missing.sluice")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("missing.sluice"));

        std::fs::write(dir.join("bad.sluice"), b"server a { port 1 }\n\xff\xfe").unwrap();
        let bad = load(&dir).unwrap_err();
        assert_eq!(bad.kind(), io::ErrorKind::InvalidData);
        assert!(bad.to_string().contains("bad.sluice"), "{bad}");
        assert!(bad.to_string().contains("UTF-8"), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_directory_gives_no_files() {
        let dir = temp_dir("empty");
        assert!(load(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
