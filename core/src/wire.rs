//! A bounds-checked cursor over untrusted bytes.
//!
//! Every parser in the core reads through [`Reader`]: each accessor returns `None` instead of
//! panicking when the input is short, so no parser indexes unchecked into network data.
//! (Hand-written rather than a crate because it must be `no_std`, allocation-free and report
//! offsets for error messages.)

use core::ops::Range;

/// A forward-only cursor over a byte slice whose reads fail softly at the end of input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, offset: 0 }
    }

    /// How many bytes have been consumed.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// How many bytes remain.
    pub fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.offset)
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.input.get(self.offset..).unwrap_or_default()
    }

    /// Consumes `len` bytes and returns their range in the original input, so callers holding
    /// the input as `Bytes` can take a zero-copy slice of it.
    pub fn take_range(&mut self, len: usize) -> Option<Range<usize>> {
        let end = self.offset.checked_add(len)?;
        if end > self.input.len() {
            return None;
        }
        let range = self.offset..end;
        self.offset = end;
        Some(range)
    }

    /// Consumes and returns `len` bytes.
    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let range = self.take_range(len)?;
        self.input.get(range)
    }

    /// Consumes `len` bytes without looking at them.
    pub fn skip(&mut self, len: usize) -> Option<()> {
        self.take_range(len).map(|_| ())
    }

    /// Consumes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Returns the next byte without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.input.get(self.offset).copied()
    }

    /// Consumes one byte.
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// Consumes a big-endian u16.
    pub fn u16_be(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    /// Consumes a big-endian 24-bit integer.
    pub fn u24_be(&mut self) -> Option<u32> {
        let [a, b, c] = self.array()?;
        Some(u32::from_be_bytes([0, a, b, c]))
    }

    /// Consumes a big-endian u32.
    pub fn u32_be(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    /// Consumes a little-endian u32.
    pub fn u32_le(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    /// Consumes a big-endian u64.
    pub fn u64_be(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail_softly_past_the_end() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.u16_be(), Some(0x0102));
        assert_eq!(reader.u16_be(), None);
        assert_eq!(reader.u8(), Some(3));
        assert_eq!(reader.u8(), None);
        assert_eq!(reader.take(usize::MAX), None);
        assert!(reader.is_empty());
    }
}
