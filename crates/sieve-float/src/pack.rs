//! Bit packing of codes of any width `1..=32`.
//!
//! Layout: element `i` occupies bits `i*w .. i*w + w` of the stream, where bit
//! `k` of the stream is bit `k % 8` of byte `k / 8` (little-endian,
//! LSB-first). Within a code, its least significant bit comes first. The last
//! byte is zero-padded. Eight codes always fill exactly `w` bytes, so a group
//! of 8 elements starting at an element index divisible by 8 starts on a byte
//! boundary — the block unit of the fast decoders.

use crate::FloatError;

/// Number of bytes holding `n` codes of `width` bits: `ceil(n * width / 8)`.
/// `None` on arithmetic overflow.
pub fn packed_len(width: u32, n: usize) -> Option<usize> {
    n.checked_mul(width as usize)?.checked_add(7).map(|b| b / 8)
}

pub(crate) fn check_width(width: u32) -> Result<(), FloatError> {
    if (1..=32).contains(&width) {
        Ok(())
    } else {
        Err(FloatError::InvalidWidth { width })
    }
}

/// Checks that `bytes_len` bytes hold elements `start .. start + count`.
pub(crate) fn check_range(
    width: u32,
    bytes_len: usize,
    start: usize,
    count: usize,
) -> Result<(), FloatError> {
    check_width(width)?;
    let needed = start
        .checked_add(count)
        .and_then(|end| packed_len(width, end));
    match needed {
        Some(needed) if needed <= bytes_len => Ok(()),
        _ => Err(FloatError::ShortInput {
            width,
            start,
            count,
            needed: needed.unwrap_or(usize::MAX),
            got: bytes_len,
        }),
    }
}

/// Low `width` bits set.
pub(crate) fn width_mask(width: u32) -> u32 {
    if width >= 32 {
        u32::MAX
    } else {
        (1u32 << width) - 1
    }
}

/// Little-endian `u64` from `bytes[off..off + 8]`, zero-padded past the end.
#[inline(always)]
pub(crate) fn load_u64(bytes: &[u8], off: usize) -> u64 {
    match bytes.get(off..).and_then(|s| s.first_chunk::<8>()) {
        Some(c) => u64::from_le_bytes(*c),
        None => {
            let mut buf = [0u8; 8];
            let tail = bytes.get(off..).unwrap_or(&[]);
            buf[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(buf)
        }
    }
}

/// Little-endian `u128` from `bytes[off..off + 16]`, zero-padded past the end.
#[inline(always)]
pub(crate) fn load_u128(bytes: &[u8], off: usize) -> u128 {
    match bytes.get(off..).and_then(|s| s.first_chunk::<16>()) {
        Some(c) => u128::from_le_bytes(*c),
        None => {
            let mut buf = [0u8; 16];
            let tail = bytes.get(off..).unwrap_or(&[]);
            buf[..tail.len()].copy_from_slice(tail);
            u128::from_le_bytes(buf)
        }
    }
}

/// Code of element `index` (bits past the end of `bytes` read as 0).
#[inline(always)]
pub(crate) fn extract(bytes: &[u8], width: u32, index: usize) -> u32 {
    let bit = index * width as usize;
    ((load_u64(bytes, bit >> 3) >> (bit & 7)) as u32) & width_mask(width)
}

/// Packs the low `width` bits of every code (higher bits are ignored) into
/// `ceil(codes.len() * width / 8)` bytes, LSB-first (see the module docs).
/// Errors with [`FloatError::InvalidWidth`] unless `width in 1..=32`.
pub fn pack(width: u32, codes: &[u32]) -> Result<Vec<u8>, FloatError> {
    check_width(width)?;
    let len = packed_len(width, codes.len()).ok_or(FloatError::InvalidWidth { width })?;
    let mut out = Vec::with_capacity(len);
    let mask = u64::from(width_mask(width));
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    for &c in codes {
        acc |= (u64::from(c) & mask) << nbits;
        nbits += width;
        if nbits >= 32 {
            out.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            nbits -= 32;
        }
    }
    while nbits > 0 {
        out.push(acc as u8);
        acc >>= 8;
        nbits = nbits.saturating_sub(8);
    }
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

/// Unpacks `n` codes of `width` bits from `bytes` (the inverse of [`pack`]).
/// Errors with [`FloatError::ShortInput`] if `bytes` holds fewer than
/// `ceil(n * width / 8)` bytes; extra bytes are ignored.
pub fn unpack(width: u32, bytes: &[u8], n: usize) -> Result<Vec<u32>, FloatError> {
    let mut out = vec![0; n];
    unpack_range(width, bytes, 0, &mut out)?;
    Ok(out)
}

/// Unpacks codes `start .. start + out.len()` of `width` bits into `out`.
/// Errors with [`FloatError::ShortInput`] if `bytes` does not hold them all.
pub fn unpack_range(
    width: u32,
    bytes: &[u8],
    start: usize,
    out: &mut [u32],
) -> Result<(), FloatError> {
    check_range(width, bytes.len(), start, out.len())?;
    for (i, o) in out.iter_mut().enumerate() {
        *o = extract(bytes, width, start + i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_lsb_first() {
        // 3-bit codes 1, 2, 7 -> bits 100 010 111 -> byte0 = 0b11_010_001, byte1 = 0b1.
        assert_eq!(pack(3, &[1, 2, 7]).unwrap(), vec![0b1101_0001, 0b1]);
        assert_eq!(pack(4, &[0xa, 0x5, 0xf]).unwrap(), vec![0x5a, 0x0f]);
        assert_eq!(pack(8, &[0x1ff]).unwrap(), vec![0xff]); // high bits ignored
        assert_eq!(pack(32, &[0x0403_0201]).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(unpack(3, &[0b1101_0001, 0b1], 3).unwrap(), vec![1, 2, 7]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            pack(0, &[1]),
            Err(FloatError::InvalidWidth { width: 0 })
        ));
        assert!(pack(33, &[1]).is_err());
        assert!(matches!(
            unpack(3, &[0], 3),
            Err(FloatError::ShortInput {
                needed: 2,
                got: 1,
                ..
            })
        ));
        assert!(unpack(7, &[], 0).unwrap().is_empty());
        let mut out = [0u32; 2];
        assert!(unpack_range(5, &[0; 2], 2, &mut out).is_err());
        assert!(unpack_range(5, &[0; 3], 2, &mut out).is_ok());
        assert!(unpack_range(5, &[0; 3], usize::MAX, &mut out).is_err());
    }
}
