//! A bounds-checked little-endian reader over the tables section.
//!
//! Every read names the field it reads (see `schema.rs`); when logging is
//! on, each named read is recorded so tests can compare the loader with the
//! schema.

use super::load::LoadError;
use super::schema::{Access, Prim};
use super::IdLists;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    log: Option<Vec<Access>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            log: None,
        }
    }

    /// Records every named read from now on.
    pub(crate) fn start_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The reads recorded since [`Reader::start_log`].
    pub(crate) fn take_log(&mut self) -> Vec<Access> {
        self.log.take().unwrap_or_default()
    }

    fn note(&mut self, field: &'static str, prim: Prim) {
        if let Some(log) = &mut self.log {
            log.push((field, prim));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self.pos.checked_add(n).ok_or(LoadError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(LoadError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn raw_u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }

    fn raw_bool(&mut self) -> Result<bool, LoadError> {
        match self.raw_u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LoadError::Invalid("boolean")),
        }
    }

    fn raw_u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn raw_u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn raw_u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length prefix, checked against the bytes left (each element takes
    /// at least `min_size` bytes), so a corrupt length cannot make us
    /// allocate much.
    fn raw_len(&mut self, min_size: usize) -> Result<usize, LoadError> {
        let n = self.raw_u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.bytes.len() - self.pos {
            return Err(LoadError::Truncated);
        }
        Ok(n)
    }

    fn raw_bytes(&mut self) -> Result<&'a [u8], LoadError> {
        let n = self.raw_len(1)?;
        self.take(n)
    }

    fn raw_str(&mut self) -> Result<&'a str, LoadError> {
        std::str::from_utf8(self.raw_bytes()?)
            .map_err(|_| LoadError::Invalid("string is not UTF-8"))
    }

    /// Appends a list of ids, each below `bound`, to `out`.
    fn raw_ids_into(&mut self, bound: usize, out: &mut Vec<u32>) -> Result<(), LoadError> {
        let n = self.raw_len(4)?;
        let bytes = self.take(n * 4)?;
        out.reserve(n);
        for c in bytes.chunks_exact(4) {
            let x = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if x as usize >= bound {
                return Err(LoadError::Invalid("index out of range"));
            }
            out.push(x);
        }
        Ok(())
    }

    fn raw_ids(&mut self, bound: usize) -> Result<Vec<u32>, LoadError> {
        let mut v = Vec::new();
        self.raw_ids_into(bound, &mut v)?;
        Ok(v)
    }

    /// The one-byte field `field`.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, LoadError> {
        self.note(field, Prim::U8);
        self.raw_u8()
    }

    /// The boolean field `field` (0 or 1).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, LoadError> {
        self.note(field, Prim::Bool);
        self.raw_bool()
    }

    /// The u16 field `field`.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, LoadError> {
        self.note(field, Prim::U16);
        self.raw_u16()
    }

    /// The u32 field `field`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, LoadError> {
        self.note(field, Prim::U32);
        self.raw_u32()
    }

    /// The u64 field `field`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, LoadError> {
        self.note(field, Prim::U64);
        self.raw_u64()
    }

    /// The u128 field `field`.
    pub(crate) fn u128(&mut self, field: &'static str) -> Result<u128, LoadError> {
        self.note(field, Prim::U128);
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// The count of the list `field` (see `raw_len` for `min_size`).
    pub(crate) fn len(&mut self, field: &'static str, min_size: usize) -> Result<usize, LoadError> {
        self.note(field, Prim::Len);
        self.raw_len(min_size)
    }

    /// The length-prefixed bytes `field`.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], LoadError> {
        self.note(field, Prim::Bytes);
        self.raw_bytes()
    }

    /// The length-prefixed UTF-8 string `field`.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, LoadError> {
        self.note(field, Prim::Str);
        self.raw_str()
    }

    /// The optional string `field`: a boolean, then the string when 1.
    pub(crate) fn opt_str(&mut self, field: &'static str) -> Result<Option<&'a str>, LoadError> {
        self.note(field, Prim::OptStr);
        Ok(if self.raw_bool()? {
            Some(self.raw_str()?)
        } else {
            None
        })
    }

    /// The optional u64 `field`: a boolean, then the u64 when 1.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, LoadError> {
        self.note(field, Prim::OptU64);
        Ok(if self.raw_bool()? {
            Some(self.raw_u64()?)
        } else {
            None
        })
    }

    /// The list of u32 `field`, each checked to be below `bound`.
    pub(crate) fn ids(&mut self, field: &'static str, bound: usize) -> Result<Vec<u32>, LoadError> {
        self.note(field, Prim::Ids);
        self.raw_ids(bound)
    }

    /// The list of u32 `field`, each checked to be below `bound`, appended
    /// to `out`.
    pub(crate) fn ids_into(
        &mut self,
        field: &'static str,
        bound: usize,
        out: &mut Vec<u32>,
    ) -> Result<(), LoadError> {
        self.note(field, Prim::Ids);
        self.raw_ids_into(bound, out)
    }

    /// The list of id lists `field`, every id below `bound`.
    pub(crate) fn id_lists(
        &mut self,
        field: &'static str,
        bound: usize,
    ) -> Result<Vec<Vec<u32>>, LoadError> {
        self.note(field, Prim::IdLists);
        let n = self.raw_len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.raw_ids(bound)?);
        }
        Ok(v)
    }

    /// The list of id lists `field`, every id below `bound`, in one
    /// [`IdLists`].
    pub(crate) fn id_lists_flat(
        &mut self,
        field: &'static str,
        bound: usize,
    ) -> Result<IdLists, LoadError> {
        self.note(field, Prim::IdLists);
        let n = self.raw_len(4)?;
        let mut lists = IdLists::default();
        for _ in 0..n {
            lists.push_with(
                |ids| self.raw_ids_into(bound, ids),
                LoadError::Invalid("id lists"),
            )?;
        }
        Ok(lists)
    }

    /// The port ranges `field`, each nonzero and ordered.
    pub(crate) fn ports(&mut self, field: &'static str) -> Result<Vec<(u16, u16)>, LoadError> {
        self.note(field, Prim::Ports);
        let n = self.raw_len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let a = self.raw_u16()?;
            let b = self.raw_u16()?;
            if a == 0 || a > b {
                return Err(LoadError::Invalid("port range"));
            }
            v.push((a, b));
        }
        Ok(v)
    }
}
