//! Read and write NumPy `.npy` files.
//!
//! Supported: format versions 1.0, 2.0 and 3.0; little-endian (or byte-order
//! free) dtypes `u1`, `i1`, `u2`, `i2`, `u4`, `i4`, `u8`, `i8`, `f4`, `f8`, `b1`;
//! C order only. Fortran order, big-endian and any other dtype (structured,
//! strings, objects, float16) are rejected with [`DataError::Npy`].
//! Every length is checked against the file before it is used, so truncated
//! or garbage input gives an error, never a panic or a huge allocation.
//!
//! Spec: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>

use std::path::Path;

use crate::DataError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element type and values of an [`NpyArray`], in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `|b1` booleans.
    Bool(Vec<bool>),
    /// `|u1`.
    U8(Vec<u8>),
    /// `|i1`.
    I8(Vec<i8>),
    /// `<u2`.
    U16(Vec<u16>),
    /// `<i2`.
    I16(Vec<i16>),
    /// `<u4`.
    U32(Vec<u32>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<u8`.
    U64(Vec<u64>),
    /// `<i8`.
    I64(Vec<i64>),
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f8`.
    F64(Vec<f64>),
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::Bool(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::U16(v) => v.len(),
            NpyData::I16(v) => v.len(),
            NpyData::U32(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::U64(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype descriptor, e.g. `"<f4"` or `"|u1"`.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::Bool(_) => "|b1",
            NpyData::U8(_) => "|u1",
            NpyData::I8(_) => "|i1",
            NpyData::U16(_) => "<u2",
            NpyData::I16(_) => "<i2",
            NpyData::U32(_) => "<u4",
            NpyData::I32(_) => "<i4",
            NpyData::U64(_) => "<u8",
            NpyData::I64(_) => "<i8",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
        }
    }
}

/// An n-dimensional array read from (or to be written to) a `.npy` file.
///
/// Invariant (checked by the readers): `data.len() == shape.iter().product()`
/// (1 for a 0-d scalar).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first. Empty for a scalar.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: NpyData,
}

macro_rules! to_vec_impl {
    ($name:ident, $t:ty, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(&self) -> Vec<$t> {
            match &self.data {
                NpyData::Bool(v) => v.iter().map(|&x| u8::from(x) as $t).collect(),
                NpyData::U8(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::I8(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::U16(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::I16(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::U32(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::I32(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::U64(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::I64(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::F32(v) => v.iter().map(|&x| x as $t).collect(),
                NpyData::F64(v) => v.iter().map(|&x| x as $t).collect(),
            }
        }
    };
}

impl NpyArray {
    /// Number of elements (product of the shape).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    to_vec_impl!(
        to_f32_vec,
        f32,
        "All values converted to `f32` with Rust `as` semantics (integers and f64 round to nearest)."
    );
    to_vec_impl!(
        to_f64_vec,
        f64,
        "All values converted to `f64` with Rust `as` semantics (exact for everything but 64-bit integers beyond 2^53)."
    );
    to_vec_impl!(
        to_i64_vec,
        i64,
        "All values converted to `i64` with Rust `as` semantics (floats truncate toward zero and saturate)."
    );
}

/// Reads a `.npy` file. See [`read_npy_bytes`] for what is accepted.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    read_npy_bytes(&bytes).map_err(|e| e.with_file(path))
}

fn npy_err(msg: impl Into<String>) -> DataError {
    DataError::Npy {
        file: None,
        msg: msg.into(),
    }
}

/// Parses the bytes of a `.npy` file.
///
/// Errors (never panics) on: bad magic, unknown version, truncated header or
/// data, a header that is not a Python dict literal with `descr`,
/// `fortran_order` and `shape`, `fortran_order: True`, big-endian or
/// unsupported dtypes, shapes whose element count overflows, and trailing
/// bytes after the data.
pub fn read_npy_bytes(bytes: &[u8]) -> Result<NpyArray, DataError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(npy_err("not a .npy file (missing \\x93NUMPY magic)"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(npy_err("truncated header length"));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12usize)
        }
        _ => {
            return Err(npy_err(format!(
                "unsupported .npy format version {major}.{minor}"
            )))
        }
    };
    let data_start = header_start
        .checked_add(header_len)
        .ok_or_else(|| npy_err("header length overflows"))?;
    if data_start > bytes.len() {
        return Err(npy_err(format!(
            "truncated header: needs {header_len} bytes, file has {}",
            bytes.len() - header_start
        )));
    }
    let header_bytes = &bytes[header_start..data_start];
    let header = if major == 3 {
        std::str::from_utf8(header_bytes).map_err(|_| npy_err("header is not valid UTF-8"))?
    } else {
        if !header_bytes.is_ascii() {
            return Err(npy_err("header is not ASCII (version 1/2)"));
        }
        std::str::from_utf8(header_bytes).map_err(|_| npy_err("header is not valid text"))?
    };
    let hdr = parse_header(header)?;
    if hdr.fortran_order {
        return Err(npy_err(
            "fortran_order = True is not supported (save with C order)",
        ));
    }
    let count = hdr
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| npy_err(format!("shape {:?} overflows", hdr.shape)))?;
    let elem = dtype_size(&hdr.descr)?;
    let nbytes = count
        .checked_mul(elem)
        .ok_or_else(|| npy_err(format!("shape {:?} overflows", hdr.shape)))?;
    let body = &bytes[data_start..];
    if body.len() < nbytes {
        return Err(npy_err(format!(
            "truncated data: shape {:?} dtype {} needs {nbytes} bytes, file has {}",
            hdr.shape,
            hdr.descr,
            body.len()
        )));
    }
    if body.len() > nbytes {
        return Err(npy_err(format!(
            "{} trailing bytes after the data of shape {:?}",
            body.len() - nbytes,
            hdr.shape
        )));
    }
    let data = decode_body(&hdr.descr, body)?;
    Ok(NpyArray {
        shape: hdr.shape,
        data,
    })
}

fn dtype_size(descr: &str) -> Result<usize, DataError> {
    let (order, kind) = split_descr(descr)?;
    let _ = order;
    Ok(match kind {
        "b1" | "u1" | "i1" => 1,
        "u2" | "i2" => 2,
        "u4" | "i4" | "f4" => 4,
        "u8" | "i8" | "f8" => 8,
        _ => return Err(npy_err(format!("unsupported dtype {descr:?}"))),
    })
}

/// Splits `"<f4"` into (`'<'`, `"f4"`), rejecting big-endian descriptors.
fn split_descr(descr: &str) -> Result<(char, &str), DataError> {
    let mut chars = descr.chars();
    let order = chars
        .next()
        .ok_or_else(|| npy_err("empty dtype descriptor"))?;
    let kind = chars.as_str();
    match order {
        '<' | '|' | '=' => Ok((order, kind)),
        '>' => {
            // A big-endian single-byte type is still fine.
            if matches!(kind, "u1" | "i1" | "b1") {
                Ok((order, kind))
            } else {
                Err(npy_err(format!(
                    "big-endian dtype {descr:?} is not supported (use little-endian)"
                )))
            }
        }
        _ => Err(npy_err(format!("unsupported dtype {descr:?}"))),
    }
}

fn chunks<const N: usize>(body: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    body.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

fn decode_body(descr: &str, body: &[u8]) -> Result<NpyData, DataError> {
    let (_, kind) = split_descr(descr)?;
    Ok(match kind {
        "b1" => NpyData::Bool(body.iter().map(|&b| b != 0).collect()),
        "u1" => NpyData::U8(body.to_vec()),
        "i1" => NpyData::I8(body.iter().map(|&b| b as i8).collect()),
        "u2" => NpyData::U16(chunks::<2>(body).map(u16::from_le_bytes).collect()),
        "i2" => NpyData::I16(chunks::<2>(body).map(i16::from_le_bytes).collect()),
        "u4" => NpyData::U32(chunks::<4>(body).map(u32::from_le_bytes).collect()),
        "i4" => NpyData::I32(chunks::<4>(body).map(i32::from_le_bytes).collect()),
        "f4" => NpyData::F32(chunks::<4>(body).map(f32::from_le_bytes).collect()),
        "u8" => NpyData::U64(chunks::<8>(body).map(u64::from_le_bytes).collect()),
        "i8" => NpyData::I64(chunks::<8>(body).map(i64::from_le_bytes).collect()),
        "f8" => NpyData::F64(chunks::<8>(body).map(f64::from_le_bytes).collect()),
        _ => return Err(npy_err(format!("unsupported dtype {descr:?}"))),
    })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(h: &str) -> Result<Header, DataError> {
    let s = h.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| npy_err(format!("header is not a dict: {s:?}")))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (key, after) = parse_str_lit(rest)?;
        let after = after.trim_start();
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| npy_err(format!("expected ':' after key {key:?}")))?
            .trim_start();
        rest = match key.as_str() {
            "descr" => {
                let (v, a) = parse_str_lit(after).map_err(|_| {
                    npy_err("descr must be a string (structured dtypes are not supported)")
                })?;
                descr = Some(v);
                a
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else {
                    return Err(npy_err("fortran_order must be True or False"));
                }
            }
            "shape" => {
                let (v, a) = parse_shape(after)?;
                shape = Some(v);
                a
            }
            other => return Err(npy_err(format!("unknown header key {other:?}"))),
        };
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(npy_err(format!("unexpected text in header: {rest:?}")));
        }
    }
    Ok(Header {
        descr: descr.ok_or_else(|| npy_err("header has no 'descr'"))?,
        fortran_order: fortran.ok_or_else(|| npy_err("header has no 'fortran_order'"))?,
        shape: shape.ok_or_else(|| npy_err("header has no 'shape'"))?,
    })
}

fn parse_str_lit(s: &str) -> Result<(String, &str), DataError> {
    let q = s
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| npy_err(format!("expected a quoted string at {s:?}")))?;
    let body = &s[1..];
    let end = body
        .find(q)
        .ok_or_else(|| npy_err("unterminated string in header"))?;
    Ok((body[..end].to_string(), &body[end + 1..]))
}

fn parse_shape(s: &str) -> Result<(Vec<usize>, &str), DataError> {
    let body = s
        .strip_prefix('(')
        .ok_or_else(|| npy_err("shape must be a tuple"))?;
    let end = body
        .find(')')
        .ok_or_else(|| npy_err("unterminated shape tuple"))?;
    let mut dims = Vec::new();
    for part in body[..end].split(',') {
        let p = part.trim().trim_end_matches('L');
        if p.is_empty() {
            continue;
        }
        let d: usize = p
            .parse()
            .map_err(|_| npy_err(format!("bad dimension {p:?} in shape")))?;
        dims.push(d);
    }
    Ok((dims, &body[end + 1..]))
}

/// Serialises `shape` + `data` to `.npy` bytes (version 1.0, or 2.0 when the
/// header does not fit in 65535 bytes), C order, little-endian.
///
/// Errors when `data.len()` is not the product of `shape`.
pub fn npy_bytes(array: &NpyArray) -> Result<Vec<u8>, DataError> {
    let count: usize = array.shape.iter().product();
    if count != array.data.len() {
        return Err(npy_err(format!(
            "shape {:?} holds {count} elements but data has {}",
            array.shape,
            array.data.len()
        )));
    }
    let shape_txt = match array.shape.len() {
        1 => format!("({},)", array.shape[0]),
        _ => format!(
            "({})",
            array
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_txt}, }}",
        array.data.descr()
    );
    // Pad with spaces so that magic + len field + header is a multiple of 64, ending in '\n'.
    let mut out = Vec::new();
    let (major, prefix) = if dict.len() + 1 + 10 <= u16::MAX as usize {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let hlen = total - prefix;
    out.extend_from_slice(MAGIC);
    out.push(major);
    out.push(0);
    if major == 1 {
        let l = u16::try_from(hlen).map_err(|_| npy_err("header too long"))?;
        out.extend_from_slice(&l.to_le_bytes());
    } else {
        let l = u32::try_from(hlen).map_err(|_| npy_err("header too long"))?;
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    match &array.data {
        NpyData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        NpyData::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    Ok(out)
}

/// Writes `array` to `path` as a `.npy` file (see [`npy_bytes`]).
pub fn write_npy(path: impl AsRef<Path>, array: &NpyArray) -> Result<(), DataError> {
    let path = path.as_ref();
    let bytes = npy_bytes(array).map_err(|e| e.with_file(path))?;
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Writes a float32 array of the given shape to `path`.
///
/// Errors when `data.len()` is not the product of `shape`, or on I/O failure.
pub fn write_npy_f32(
    path: impl AsRef<Path>,
    shape: &[usize],
    data: &[f32],
) -> Result<(), DataError> {
    write_npy(
        path,
        &NpyArray {
            shape: shape.to_vec(),
            data: NpyData::F32(data.to_vec()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(shape: &[usize], data: NpyData) -> NpyArray {
        NpyArray {
            shape: shape.to_vec(),
            data,
        }
    }

    #[test]
    fn round_trip_all_dtypes() {
        let cases = vec![
            arr(
                &[2, 3],
                NpyData::F32(vec![1.0, -2.5, 3.25, f32::MAX, 0.0, -0.0]),
            ),
            arr(&[3], NpyData::F64(vec![1.0, 1e300, -7.5])),
            arr(&[2, 2], NpyData::I64(vec![i64::MIN, -1, 0, i64::MAX])),
            arr(&[4], NpyData::I32(vec![i32::MIN, -1, 7, i32::MAX])),
            arr(&[1, 2, 2], NpyData::U8(vec![0, 1, 254, 255])),
            arr(&[2], NpyData::I8(vec![-128, 127])),
            arr(&[2], NpyData::U16(vec![0, 65535])),
            arr(&[2], NpyData::I16(vec![-3, 3])),
            arr(&[2], NpyData::U32(vec![0, u32::MAX])),
            arr(&[2], NpyData::U64(vec![0, u64::MAX])),
            arr(&[3], NpyData::Bool(vec![true, false, true])),
            arr(&[], NpyData::F32(vec![42.0])),
            arr(&[0, 5], NpyData::F32(vec![])),
        ];
        for a in cases {
            let b = npy_bytes(&a).unwrap();
            let header_total = 10 + u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!(header_total % 64, 0, "header padded to 64");
            let back = read_npy_bytes(&b).unwrap();
            assert_eq!(back, a);
        }
    }

    #[test]
    fn reads_numpy_written_header() {
        // Exactly what numpy 1.x writes for np.arange(6, dtype='<i8').reshape(2,3).
        let mut b = Vec::new();
        b.extend_from_slice(b"\x93NUMPY\x01\x00");
        let dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = dict.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for i in 0i64..6 {
            b.extend_from_slice(&i.to_le_bytes());
        }
        let a = read_npy_bytes(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f32_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a.to_i64_vec(), vec![0, 1, 2, 3, 4, 5]);
    }

    fn with_header(major: u8, dict: &str, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"\x93NUMPY");
        b.push(major);
        b.push(0);
        let h = format!("{dict}\n");
        if major == 1 {
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn reads_v2_and_v3() {
        let body: Vec<u8> = [1.5f32, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
        for major in [2u8, 3] {
            let b = with_header(
                major,
                "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
                &body,
            );
            let a = read_npy_bytes(&b).unwrap();
            assert_eq!(a.data, NpyData::F32(vec![1.5, 2.5]));
        }
    }

    #[test]
    fn rejects_fortran_bigendian_unknown() {
        let b = with_header(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &[0; 4],
        );
        let e = read_npy_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("fortran_order"), "{e}");
        let b = with_header(
            1,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        let e = read_npy_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("big-endian"), "{e}");
        let b = with_header(
            1,
            "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }",
            &[0; 2],
        );
        let e = read_npy_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("unsupported dtype"), "{e}");
        let b = with_header(
            1,
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        assert!(read_npy_bytes(&b).is_err());
        // Big-endian single bytes are fine.
        let b = with_header(
            1,
            "{'descr': '>u1', 'fortran_order': False, 'shape': (2,), }",
            &[7, 9],
        );
        assert_eq!(read_npy_bytes(&b).unwrap().data, NpyData::U8(vec![7, 9]));
    }

    #[test]
    fn malformed_never_panics() {
        let good = npy_bytes(&arr(&[3, 2], NpyData::F64(vec![1.0; 6]))).unwrap();
        // Every truncation is an error.
        for n in 0..good.len() {
            assert!(read_npy_bytes(&good[..n]).is_err(), "truncated at {n}");
        }
        // Trailing garbage is an error.
        let mut long = good.clone();
        long.push(0);
        assert!(read_npy_bytes(&long).is_err());
        // Flipping any header byte never panics.
        for i in 0..good.len().min(128) {
            for v in [0u8, 0xff, b'(', b'\'', b'9', b',', b'}'] {
                let mut g = good.clone();
                g[i] = v;
                let _ = read_npy_bytes(&g);
            }
        }
        // Huge shapes are rejected without allocating.
        let b = with_header(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999), }",
            &[],
        );
        assert!(read_npy_bytes(&b).is_err());
        let b = with_header(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
            &[],
        );
        assert!(read_npy_bytes(&b).is_err());
        assert!(read_npy_bytes(b"garbage garbage").is_err());
        let e = read_npy_bytes(b"\x93NUMPY\x09\x00\x00\x00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("version"), "{e}");
    }

    #[test]
    fn write_rejects_shape_mismatch() {
        let dir = std::env::temp_dir().join(format!("sieve-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.npy");
        assert!(write_npy_f32(&p, &[2, 2], &[1.0; 3]).is_err());
        write_npy_f32(&p, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
