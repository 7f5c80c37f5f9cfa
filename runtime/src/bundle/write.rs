//! A little-endian writer of the tables section, the mirror of `read.rs`.
//!
//! Every write names the field it writes (see `schema.rs`); when logging is
//! on, each named write is recorded so tests can compare the encoder with
//! the schema.

use super::schema::{Access, Prim};

/// Appends the fields of the tables section to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    log: Option<Vec<Access>>,
}

impl Writer {
    /// Records every named write from now on.
    pub(crate) fn start_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The writes recorded since [`Writer::start_log`].
    pub(crate) fn take_log(&mut self) -> Vec<Access> {
        self.log.take().unwrap_or_default()
    }

    fn note(&mut self, field: &'static str, prim: Prim) {
        if let Some(log) = &mut self.log {
            log.push((field, prim));
        }
    }

    fn raw_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn raw_bytes(&mut self, s: &[u8]) {
        self.raw_u32(s.len() as u32);
        self.buf.extend_from_slice(s);
    }

    fn raw_ids(&mut self, v: &[u32]) {
        self.raw_u32(v.len() as u32);
        for &x in v {
            self.raw_u32(x);
        }
    }

    /// The one-byte field `field`.
    pub(crate) fn u8(&mut self, field: &'static str, v: u8) {
        self.note(field, Prim::U8);
        self.buf.push(v);
    }

    /// The boolean field `field` (0 or 1).
    pub(crate) fn bool(&mut self, field: &'static str, v: bool) {
        self.note(field, Prim::Bool);
        self.buf.push(u8::from(v));
    }

    /// The u16 field `field`.
    pub(crate) fn u16(&mut self, field: &'static str, v: u16) {
        self.note(field, Prim::U16);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// The u32 field `field`.
    pub(crate) fn u32(&mut self, field: &'static str, v: u32) {
        self.note(field, Prim::U32);
        self.raw_u32(v);
    }

    /// The u64 field `field`.
    pub(crate) fn u64(&mut self, field: &'static str, v: u64) {
        self.note(field, Prim::U64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// The u128 field `field`.
    pub(crate) fn u128(&mut self, field: &'static str, v: u128) {
        self.note(field, Prim::U128);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// The count `n` of the list `field`.
    pub(crate) fn len(&mut self, field: &'static str, n: usize) {
        self.note(field, Prim::Len);
        self.raw_u32(n as u32);
    }

    /// The length-prefixed bytes `field`.
    pub(crate) fn bytes(&mut self, field: &'static str, s: &[u8]) {
        self.note(field, Prim::Bytes);
        self.raw_bytes(s);
    }

    /// The length-prefixed UTF-8 string `field`.
    pub(crate) fn str(&mut self, field: &'static str, s: &str) {
        self.note(field, Prim::Str);
        self.raw_bytes(s.as_bytes());
    }

    /// The optional string `field`: a boolean, then the string when 1.
    pub(crate) fn opt_str(&mut self, field: &'static str, s: Option<&str>) {
        self.note(field, Prim::OptStr);
        match s {
            Some(s) => {
                self.buf.push(1);
                self.raw_bytes(s.as_bytes());
            }
            None => self.buf.push(0),
        }
    }

    /// The optional u64 `field`: a boolean, then the u64 when 1.
    pub(crate) fn opt_u64(&mut self, field: &'static str, v: Option<u64>) {
        self.note(field, Prim::OptU64);
        match v {
            Some(v) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            None => self.buf.push(0),
        }
    }

    /// The list of u32 `field`.
    pub(crate) fn ids(&mut self, field: &'static str, v: &[u32]) {
        self.note(field, Prim::Ids);
        self.raw_ids(v);
    }

    /// The list of id lists `field`.
    pub(crate) fn id_lists(&mut self, field: &'static str, v: &[Vec<u32>]) {
        self.note(field, Prim::IdLists);
        self.raw_u32(v.len() as u32);
        for l in v {
            self.raw_ids(l);
        }
    }

    /// The port ranges `field`.
    pub(crate) fn ports(&mut self, field: &'static str, v: &[(u16, u16)]) {
        self.note(field, Prim::Ports);
        self.raw_u32(v.len() as u32);
        for &(a, b) in v {
            self.buf.extend_from_slice(&a.to_le_bytes());
            self.buf.extend_from_slice(&b.to_le_bytes());
        }
    }
}
