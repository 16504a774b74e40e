//! Weight operands of compute layers (Conv, Gemm, MatMul): dense `f32`, bit-packed
//! custom floats ([`PackedWeights`]) or any other [`WeightSource`].
//!
//! Memory contract for encoded weights (DESIGN §4): fully-connected layers read
//! [`PackedWeights`] directly (`kernels::packed::fc`); convolutions decode them inside
//! the kernel ([`Weights::range_decoder`], `kernels::conv2d_weights`): panel by panel
//! straight into the packed GEMM / Winograd layout, or whole into a per-thread buffer
//! on the paths that read plain values; every other consumer decodes through
//! [`Weights::decoded`], whose buffer is one per thread, reused by every layer and
//! returned when the view is dropped — so a run holds the packed weights plus, per
//! running thread, one layer's decoded (or packed-for-the-kernel) weights, never the
//! whole `f32` model.

use crate::{kernels, NnError, Tensor};
use sieve_float::PackedTensor;
use std::any::Any;
use std::cell::RefCell;
use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;

/// A weight tensor stored in some compact form that can be decoded to `f32`.
///
/// Contract: `shape()` is the logical shape of the decoded tensor (same layout as
/// the dense weights it replaces, e.g. OIHW for Conv) and `decode_into` writes
/// exactly `shape().iter().product()` values, row-major, into `out` (which has that
/// length). Decoding must be deterministic and thread-safe.
pub trait WeightSource: Send + Sync + Debug {
    /// Logical shape of the decoded weights.
    fn shape(&self) -> &[usize];
    /// Decodes all weights into `out` (`out.len()` equals the element count).
    fn decode_into(&self, out: &mut [f32]) -> Result<(), NnError>;
    /// Bytes the stored form occupies (for memory reports).
    fn stored_bytes(&self) -> usize;
    /// For downcasting by kernels that can consume the stored form directly.
    fn as_any(&self) -> &dyn Any;
}

/// The weight operand of a compute layer.
#[derive(Clone, Debug)]
pub enum Weights {
    /// Plain `f32` tensor (shared, never copied by the executor).
    Dense(Tensor),
    /// A compressed form decoded per run into the node's scratch.
    Encoded(Arc<dyn WeightSource>),
}

impl Weights {
    /// Dense weights from a tensor; fails if the tensor is not `f32`.
    pub fn dense(t: Tensor) -> Result<Weights, NnError> {
        t.f32s()?;
        Ok(Weights::Dense(t))
    }

    /// Logical shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Weights::Dense(t) => t.shape(),
            Weights::Encoded(s) => s.shape(),
        }
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True if there is no weight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dense data, if dense.
    pub fn as_dense(&self) -> Option<&[f32]> {
        match self {
            Weights::Dense(t) => t.as_f32(),
            Weights::Encoded(_) => None,
        }
    }

    /// Bytes held in memory by this operand.
    pub fn stored_bytes(&self) -> usize {
        match self {
            Weights::Dense(t) => t.len() * 4,
            Weights::Encoded(s) => s.stored_bytes(),
        }
    }

    /// The bit-packed codes, if the weights are [`PackedWeights`] **without** per-channel
    /// scales (their codes alone are the values; for scaled ones see
    /// [`Weights::fc_operand`]).
    pub fn packed(&self) -> Option<&PackedTensor> {
        match self {
            Weights::Dense(_) => None,
            Weights::Encoded(s) => s
                .as_any()
                .downcast_ref::<PackedWeights>()
                .filter(|p| p.shifts().is_none())
                .map(|p| p.packed()),
        }
    }

    /// The operand of the fully-connected kernel if the weights are [`PackedWeights`]
    /// (packed codes, with their per-row scales if any); `None` for anything else.
    pub fn fc_operand(&self) -> Option<kernels::packed::FcWeights<'_>> {
        match self {
            Weights::Dense(_) => None,
            Weights::Encoded(s) => {
                s.as_any()
                    .downcast_ref::<PackedWeights>()
                    .map(|p| match p.shifts() {
                        Some(sh) => kernels::packed::FcWeights::Scaled(p.packed(), sh),
                        None => kernels::packed::FcWeights::Packed(p.packed()),
                    })
            }
        }
    }

    /// A decoder of any element range if the weights are [`PackedWeights`] (how
    /// convolutions decode straight into their packed layout); `None` for anything else.
    pub fn range_decoder(&self) -> Result<Option<kernels::packed::RangeDecoder<'_>>, NnError> {
        let Weights::Encoded(s) = self else {
            return Ok(None);
        };
        let Some(p) = s.as_any().downcast_ref::<PackedWeights>() else {
            return Ok(None);
        };
        kernels::packed::RangeDecoder::new(p.packed(), p.shifts().unwrap_or(&[]))
            .map(Some)
            .map_err(|e| {
                NnError::Graph(format!(
                    "packed weights {:?} ({}): {e}",
                    p.shape,
                    p.packed.format()
                ))
            })
    }

    /// The weights as an `f32` slice: the dense data directly, or the encoded form
    /// decoded into this thread's shared decode buffer (see the module docs), which is
    /// handed back when the view is dropped. Keep the view only for the layer's run.
    pub fn decoded(&self) -> Result<WeightView<'_>, NnError> {
        match self {
            Weights::Dense(t) => Ok(WeightView {
                inner: ViewInner::Borrowed(t.f32s()?),
            }),
            Weights::Encoded(s) => {
                let n = self.len();
                let mut buf = DECODE_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
                if buf.len() < n {
                    buf.resize(n, 0.0);
                }
                s.decode_into(&mut buf[..n])?;
                Ok(WeightView {
                    inner: ViewInner::Decoded(buf, n),
                })
            }
        }
    }

    /// The weights as an `f32` slice: the dense data directly, or the encoded form
    /// decoded into `scratch` (resized as needed; it keeps the decoded copy, so prefer
    /// [`Weights::decoded`], which shares one buffer across layers).
    pub fn view<'a>(&'a self, scratch: &'a mut Vec<f32>) -> Result<&'a [f32], NnError> {
        match self {
            Weights::Dense(t) => t.f32s(),
            Weights::Encoded(s) => {
                let n = self.len();
                scratch.clear();
                scratch.resize(n, 0.0);
                s.decode_into(scratch)?;
                Ok(scratch.as_slice())
            }
        }
    }

    /// The weights as a dense tensor (decoding if needed).
    pub fn to_tensor(&self) -> Result<Tensor, NnError> {
        match self {
            Weights::Dense(t) => Ok(t.clone()),
            Weights::Encoded(s) => {
                let mut v = vec![0.0; self.len()];
                s.decode_into(&mut v)?;
                Tensor::from_f32(s.shape().to_vec(), v)
            }
        }
    }
}

thread_local! {
    /// Per-thread decode buffer shared by all layers (largest layer decoded so far).
    static DECODE_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Decoded (or borrowed dense) weights of one layer, from [`Weights::decoded`].
/// Dereferences to the `f32` values; dropping it returns the decode buffer to the
/// thread for the next layer.
#[derive(Debug)]
pub struct WeightView<'a> {
    inner: ViewInner<'a>,
}

#[derive(Debug)]
enum ViewInner<'a> {
    Borrowed(&'a [f32]),
    /// Buffer (possibly longer) and the number of valid values.
    Decoded(Vec<f32>, usize),
}

impl Deref for WeightView<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &self.inner {
            ViewInner::Borrowed(d) => d,
            ViewInner::Decoded(v, n) => &v[..*n],
        }
    }
}

impl Drop for WeightView<'_> {
    fn drop(&mut self) {
        if let ViewInner::Decoded(v, _) = &mut self.inner {
            let v = std::mem::take(v);
            // A nested view (work stolen by this thread meanwhile) may have left a
            // buffer: keep the larger one only.
            DECODE_BUF.with(|b| {
                let mut b = b.borrow_mut();
                if v.len() > b.len() {
                    *b = v;
                }
            });
        }
    }
}

/// Bytes held by this thread's shared decode buffer (for memory tests and reports).
pub fn decode_buffer_bytes() -> usize {
    DECODE_BUF.with(|b| b.borrow().len() * 4)
}

/// A layer's weights kept bit-packed in a custom float format ([`PackedTensor`]),
/// optionally with one power-of-two scale per output channel (slice along axis 0):
/// the value of element `i` of channel `c` is `decode(code_i) * 2^shifts[c]` — exact,
/// since every shift is checked to keep the product a normal finite `f32`
/// ([`kernels::packed::shift_range`]).
///
/// Fully-connected kernels consume the codes directly; other layers decode them
/// (SIMD, both cores) into the shared per-thread buffer of [`Weights::decoded`].
#[derive(Debug, Clone)]
pub struct PackedWeights {
    shape: Vec<usize>,
    packed: PackedTensor,
    shifts: Option<Vec<i8>>,
}

impl PackedWeights {
    /// Wraps `packed`; fails unless it holds exactly `shape`'s element count.
    pub fn new(shape: Vec<usize>, packed: PackedTensor) -> Result<PackedWeights, NnError> {
        let n: usize = shape.iter().product();
        if n != packed.len() {
            return Err(NnError::Length {
                shape,
                expected: n,
                len: packed.len(),
            });
        }
        Ok(PackedWeights {
            shape,
            packed,
            shifts: None,
        })
    }

    /// Wraps `packed` with one power-of-two scale per slice along axis 0 of `shape`
    /// (`shifts.len() == shape[0]`). Fails on a wrong element count, a wrong number of
    /// shifts or a shift outside [`kernels::packed::shift_range`] of the format.
    pub fn with_shifts(
        shape: Vec<usize>,
        packed: PackedTensor,
        shifts: Vec<i8>,
    ) -> Result<PackedWeights, NnError> {
        let mut w = PackedWeights::new(shape, packed)?;
        let rows = w.shape.first().copied().unwrap_or(1);
        kernels::packed::check_shifts(&w.packed, rows, &shifts).map_err(|e| {
            NnError::Graph(format!(
                "packed weights {:?} ({}): {e}",
                w.shape,
                w.packed.format()
            ))
        })?;
        w.shifts = Some(shifts);
        Ok(w)
    }

    /// The packed codes.
    pub fn packed(&self) -> &PackedTensor {
        &self.packed
    }

    /// The per-channel shifts (axis 0), if any.
    pub fn shifts(&self) -> Option<&[i8]> {
        self.shifts.as_deref()
    }
}

impl WeightSource for PackedWeights {
    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn decode_into(&self, out: &mut [f32]) -> Result<(), NnError> {
        match &self.shifts {
            Some(s) => kernels::packed::decode_scaled_into(&self.packed, s, out),
            None => kernels::packed::decode_into(&self.packed, out),
        }
        .map_err(|e| {
            NnError::Graph(format!(
                "decoding packed weights {:?} ({}): {e}",
                self.shape,
                self.packed.format()
            ))
        })
    }

    fn stored_bytes(&self) -> usize {
        self.packed.bytes().len() + self.shifts.as_ref().map_or(0, Vec::len)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decoded_view_shares_one_buffer_across_layers() {
        let f: sieve_float::Format = "s1e4m3b7".parse().unwrap();
        let vals: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 300.0).collect();
        let big = PackedTensor::encode_from(f, &vals).unwrap();
        let small = PackedTensor::encode_from(f, &vals[..100]).unwrap();
        let wb = Weights::Encoded(Arc::new(PackedWeights::new(vec![10, 100], big).unwrap()));
        let ws = Weights::Encoded(Arc::new(PackedWeights::new(vec![100], small).unwrap()));
        assert_eq!(wb.stored_bytes(), 1000);
        assert_eq!(wb.packed().unwrap().len(), 1000);
        let expect = sieve_float::PackedTensor::encode_from(f, &vals)
            .unwrap()
            .to_vec();
        {
            let v = wb.decoded().unwrap();
            assert_eq!(&*v, &expect[..]);
            // While borrowed, the thread's buffer is lent out.
            assert_eq!(decode_buffer_bytes(), 0);
        }
        assert_eq!(decode_buffer_bytes(), 4000);
        for _ in 0..3 {
            let v = ws.decoded().unwrap();
            assert_eq!(v.len(), 100);
            assert_eq!(&*v, &expect[..100]);
        }
        // Never more than the largest layer.
        assert_eq!(decode_buffer_bytes(), 4000);
        let dense = Weights::dense(Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap()).unwrap();
        assert_eq!(&*dense.decoded().unwrap(), &[1.0, 2.0]);
        assert!(dense.packed().is_none());
        assert!(
            PackedWeights::new(vec![3, 3], PackedTensor::encode_from(f, &[1.0]).unwrap()).is_err()
        );
    }

    #[test]
    fn per_channel_shifts_scale_the_decoded_rows() {
        let f: sieve_float::Format = "s1e4m3b7".parse().unwrap();
        let vals: Vec<f32> = (0..12).map(|i| (i as f32 - 5.0) / 4.0).collect();
        let p = PackedTensor::encode_from(f, &vals).unwrap();
        let plain = p.to_vec();
        let pw = PackedWeights::with_shifts(vec![3, 2, 2], p.clone(), vec![3, 0, -5]).unwrap();
        assert_eq!(pw.stored_bytes(), 12 + 3);
        let w = Weights::Encoded(Arc::new(pw));
        let d = w.decoded().unwrap();
        for (i, (&x, &y)) in d.iter().zip(&plain).enumerate() {
            let s = [3, 0, -5][i / 4];
            assert_eq!(x.to_bits(), (y * 2f32.powi(s)).to_bits(), "element {i}");
        }
        drop(d);
        // Scaled codes are not plain values: `packed()` hides them, `fc_operand` carries
        // the shifts.
        assert!(w.packed().is_none());
        assert!(matches!(
            w.fc_operand(),
            Some(kernels::packed::FcWeights::Scaled(_, &[3, 0, -5]))
        ));
        // Wrong count or out-of-range shifts are errors, never a panic.
        assert!(PackedWeights::with_shifts(vec![3, 4], p.clone(), vec![0, 0]).is_err());
        let e = PackedWeights::with_shifts(vec![3, 4], p, vec![0, 0, 127]).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }
}
