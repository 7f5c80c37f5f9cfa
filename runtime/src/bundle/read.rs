//! A bounds-checked little-endian reader over the tables section.

use super::load::LoadError;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
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

    pub(crate) fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn bool(&mut self) -> Result<bool, LoadError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LoadError::Invalid("boolean")),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, LoadError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u128(&mut self) -> Result<u128, LoadError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// A length prefix, checked against the bytes left (each element takes
    /// at least `min_size` bytes), so a corrupt length cannot make us
    /// allocate much.
    pub(crate) fn len(&mut self, min_size: usize) -> Result<usize, LoadError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.bytes.len() - self.pos {
            return Err(LoadError::Truncated);
        }
        Ok(n)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], LoadError> {
        let n = self.len(1)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, LoadError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| LoadError::Invalid("string is not UTF-8"))
    }

    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>, LoadError> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>, LoadError> {
        Ok(if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    /// A list of u32, each checked to be below `bound`.
    pub(crate) fn ids(&mut self, bound: usize) -> Result<Vec<u32>, LoadError> {
        let n = self.len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let x = self.u32()?;
            if x as usize >= bound {
                return Err(LoadError::Invalid("index out of range"));
            }
            v.push(x);
        }
        Ok(v)
    }

    pub(crate) fn id_lists(&mut self, bound: usize) -> Result<Vec<Vec<u32>>, LoadError> {
        let n = self.len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.ids(bound)?);
        }
        Ok(v)
    }

    pub(crate) fn ports(&mut self) -> Result<Vec<(u16, u16)>, LoadError> {
        let n = self.len(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let a = self.u16()?;
            let b = self.u16()?;
            if a == 0 || a > b {
                return Err(LoadError::Invalid("port range"));
            }
            v.push((a, b));
        }
        Ok(v)
    }
}
