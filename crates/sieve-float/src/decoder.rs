//! [`Decoder`]: fast decoding of packed code streams.
//!
//! Built once per format. Widths 1, 2 and 4 decode a whole byte at a time
//! through a 256-entry table of 8, 4 or 2 values; the other widths up to 12
//! look each code up in a `2^w`-entry table, extracting 8 codes at a time
//! from one `u64` (w <= 8) or `u128` (w <= 16) word; wider codes go through
//! the bit arithmetic of the paper's decompressor engine.

use crate::codec::Consts;
use crate::pack::{check_range, extract, load_u128, load_u64, width_mask};
use crate::{FloatError, Format};

/// Widths up to this decode through a per-code table.
pub const TABLE_MAX_WIDTH: u32 = 12;
const TABLE_LEN: usize = 1 << TABLE_MAX_WIDTH;
const TABLE_IDX: usize = TABLE_LEN - 1;

/// Whole-byte lookup tables for the widths that divide 8 (except 8 itself,
/// which uses the per-code table directly).
#[derive(Clone)]
enum ByteLut {
    None,
    W1(Box<[[f32; 8]; 256]>),
    W2(Box<[[f32; 4]; 256]>),
    W4(Box<[[f32; 2]; 256]>),
}

/// Decoder of one [`Format`], holding its precomputed tables.
///
/// Construction costs at most a few thousand scalar decodes; build one per
/// tensor (or per layer) and reuse it for every row.
#[derive(Clone)]
pub struct Decoder {
    format: Format,
    consts: Consts,
    width: u32,
    table: Option<Box<[f32; TABLE_LEN]>>,
    byte_lut: ByteLut,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("format", &self.format)
            .field("table", &self.table.is_some())
            .finish()
    }
}

impl Decoder {
    /// Builds the decoder (and its tables, for widths <= [`TABLE_MAX_WIDTH`]).
    pub fn new(format: Format) -> Decoder {
        let consts = Consts::new(format);
        let width = format.width();
        let table = (width <= TABLE_MAX_WIDTH).then(|| {
            let mut t = Box::new([0f32; TABLE_LEN]);
            for (code, v) in t.iter_mut().take(1 << width).enumerate() {
                *v = consts.decode(code as u32);
            }
            t
        });
        let byte_lut = match width {
            1 => ByteLut::W1(Box::new(byte_table(&consts, 1))),
            2 => ByteLut::W2(Box::new(byte_table(&consts, 2))),
            4 => ByteLut::W4(Box::new(byte_table(&consts, 4))),
            _ => ByteLut::None,
        };
        Decoder {
            format,
            consts,
            width,
            table,
            byte_lut,
        }
    }

    /// The format this decoder decodes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes one code, as [`crate::decode`].
    #[inline]
    pub fn decode(&self, code: u32) -> f32 {
        self.consts.decode(code)
    }

    /// Table lookup of one code (widths <= [`TABLE_MAX_WIDTH`]; `None`
    /// otherwise). Only the low `width` bits of `code` are used.
    pub fn decode_table(&self, code: u32) -> Option<f32> {
        let t = self.table.as_ref()?;
        Some(t[(code & width_mask(self.width)) as usize & TABLE_IDX])
    }

    /// Decodes the first `n` packed codes of `bytes` into `out[..n]`.
    /// Errors if `out` is shorter than `n` or `bytes` shorter than
    /// `ceil(n * width / 8)`.
    pub fn decode_packed(&self, bytes: &[u8], n: usize, out: &mut [f32]) -> Result<(), FloatError> {
        let got = out.len();
        let out = out.get_mut(..n).ok_or(FloatError::LengthMismatch {
            what: "decode_packed output",
            expected: n,
            got,
        })?;
        self.decode_packed_range(bytes, 0, out)
    }

    /// Decodes packed elements `start .. start + out.len()` of `bytes` into
    /// `out` (e.g. one row of a packed weight matrix). Errors with
    /// [`FloatError::ShortInput`] if `bytes` does not hold them.
    pub fn decode_packed_range(
        &self,
        bytes: &[u8],
        start: usize,
        out: &mut [f32],
    ) -> Result<(), FloatError> {
        check_range(self.width, bytes.len(), start, out.len())?;
        // Head: elements until `start + i` is a multiple of 8 (byte-aligned group).
        let head = ((8 - start % 8) % 8).min(out.len());
        let (head_out, rest) = out.split_at_mut(head);
        for (i, o) in head_out.iter_mut().enumerate() {
            *o = self.consts.decode(extract(bytes, self.width, start + i));
        }
        let first = start + head;
        let groups = rest.len() / 8 * 8;
        let (body, tail) = rest.split_at_mut(groups);
        let byte_off = first / 8 * self.width as usize;
        let body_bytes = bytes.get(byte_off..).unwrap_or(&[]);
        self.decode_aligned(body_bytes, body);
        let tail_start = first + groups;
        for (i, o) in tail.iter_mut().enumerate() {
            *o = self
                .consts
                .decode(extract(bytes, self.width, tail_start + i));
        }
        Ok(())
    }

    /// `out.len()` is a multiple of 8 and `bytes` starts at element 0.
    fn decode_aligned(&self, bytes: &[u8], out: &mut [f32]) {
        match (&self.byte_lut, &self.table) {
            (ByteLut::W1(l), _) => bytewise(l, bytes, out),
            (ByteLut::W2(l), _) => bytewise(l, bytes, out),
            (ByteLut::W4(l), _) => bytewise(l, bytes, out),
            (ByteLut::None, Some(t)) => match self.width {
                3 => table_u64::<3>(t, bytes, out),
                5 => table_u64::<5>(t, bytes, out),
                6 => table_u64::<6>(t, bytes, out),
                7 => table_u64::<7>(t, bytes, out),
                8 => {
                    for (o, &b) in out.iter_mut().zip(bytes) {
                        *o = t[usize::from(b)];
                    }
                }
                9 => table_u128::<9>(t, bytes, out),
                10 => table_u128::<10>(t, bytes, out),
                11 => table_u128::<11>(t, bytes, out),
                _ => table_u128::<12>(t, bytes, out),
            },
            (ByteLut::None, None) => match self.width {
                13 => arith_u128::<13>(&self.consts, bytes, out),
                14 => arith_u128::<14>(&self.consts, bytes, out),
                15 => arith_u128::<15>(&self.consts, bytes, out),
                16 => arith_u128::<16>(&self.consts, bytes, out),
                w => arith_window(&self.consts, w, bytes, out),
            },
        }
    }
}

/// 256-entry table: byte -> the `8 / width` values it packs.
fn byte_table<const K: usize>(c: &Consts, width: u32) -> [[f32; K]; 256] {
    let mut t = [[0f32; K]; 256];
    for (byte, vals) in t.iter_mut().enumerate() {
        for (j, v) in vals.iter_mut().enumerate() {
            *v = c.decode((byte as u32 >> (j as u32 * width)) & width_mask(width));
        }
    }
    t
}

#[inline(always)]
fn bytewise<const K: usize>(lut: &[[f32; K]; 256], bytes: &[u8], out: &mut [f32]) {
    for (o, &b) in out.chunks_exact_mut(K).zip(bytes) {
        o.copy_from_slice(&lut[usize::from(b)]);
    }
}

#[inline(always)]
fn table_u64<const W: usize>(t: &[f32; TABLE_LEN], bytes: &[u8], out: &mut [f32]) {
    let mask = (1u64 << W) - 1;
    for (g, o8) in out.chunks_exact_mut(8).enumerate() {
        let word = load_u64(bytes, g * W);
        for (j, o) in o8.iter_mut().enumerate() {
            *o = t[((word >> (j * W)) & mask) as usize & TABLE_IDX];
        }
    }
}

#[inline(always)]
fn table_u128<const W: usize>(t: &[f32; TABLE_LEN], bytes: &[u8], out: &mut [f32]) {
    let mask = (1u128 << W) - 1;
    for (g, o8) in out.chunks_exact_mut(8).enumerate() {
        let word = load_u128(bytes, g * W);
        for (j, o) in o8.iter_mut().enumerate() {
            *o = t[((word >> (j * W)) & mask) as usize & TABLE_IDX];
        }
    }
}

#[inline(always)]
fn arith_u128<const W: usize>(c: &Consts, bytes: &[u8], out: &mut [f32]) {
    let mask = (1u128 << W) - 1;
    for (g, o8) in out.chunks_exact_mut(8).enumerate() {
        let word = load_u128(bytes, g * W);
        for (j, o) in o8.iter_mut().enumerate() {
            *o = c.decode(((word >> (j * W)) & mask) as u32);
        }
    }
}

/// Widths 17..=31: a group of 8 codes is `width` bytes; codes 0..4 lie in
/// the `u128` at the group's first byte, codes 4..8 in the `u128` starting
/// at byte `width / 2` of the group (4 bits further in when `width` is odd).
fn arith_window(c: &Consts, width: u32, bytes: &[u8], out: &mut [f32]) {
    let w = width as usize;
    let mask = u128::from(width_mask(width));
    let half_skip = (4 * w) % 8;
    for (g, o8) in out.chunks_exact_mut(8).enumerate() {
        let lo = load_u128(bytes, g * w);
        let hi = load_u128(bytes, g * w + w / 2) >> half_skip;
        let (first, second) = o8.split_at_mut(4);
        for (j, o) in first.iter_mut().enumerate() {
            *o = c.decode(((lo >> (j * w)) & mask) as u32);
        }
        for (j, o) in second.iter_mut().enumerate() {
            *o = c.decode(((hi >> (j * w)) & mask) as u32);
        }
    }
}

/// Convenience: [`Decoder::decode_packed`] with a decoder built for this call.
/// Prefer a [`Decoder`] when decoding many rows of one format.
pub fn decode_packed(
    fmt: Format,
    bytes: &[u8],
    n: usize,
    out: &mut [f32],
) -> Result<(), FloatError> {
    Decoder::new(fmt).decode_packed(bytes, n, out)
}

/// Convenience: [`Decoder::decode_packed_range`] with a decoder built for
/// this call. Prefer a [`Decoder`] when decoding many rows of one format.
pub fn decode_packed_range(
    fmt: Format,
    bytes: &[u8],
    start: usize,
    out: &mut [f32],
) -> Result<(), FloatError> {
    Decoder::new(fmt).decode_packed_range(bytes, start, out)
}
