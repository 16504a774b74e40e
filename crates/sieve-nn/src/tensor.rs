//! Dense tensors: a shape and row-major data, `f32` for compute and `i64` for
//! shape/index tensors. Data is reference counted, so cloning a tensor is cheap and
//! mutation is copy-on-write.

use crate::NnError;
use std::sync::Arc;

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every compute tensor.
    F32,
    /// 64-bit signed integer: shapes, axes, pads, indices.
    I64,
}

impl DType {
    /// Lower-case name (`"f32"`, `"i64"`), used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Data {
    F32(Arc<Vec<f32>>),
    I64(Arc<Vec<i64>>),
}

/// An n-dimensional array in row-major order. A rank-0 tensor (scalar) has an empty
/// shape and one element.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Data,
}

fn check_len(shape: &[usize], len: usize) -> Result<(), NnError> {
    let expected: usize = shape.iter().product();
    if expected != len {
        return Err(NnError::Length {
            shape: shape.to_vec(),
            expected,
            len,
        });
    }
    Ok(())
}

impl Tensor {
    /// An `f32` tensor. Fails if `data.len()` differs from the product of `shape`.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, NnError> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape,
            data: Data::F32(Arc::new(data)),
        })
    }

    /// An `i64` tensor. Fails if `data.len()` differs from the product of `shape`.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, NnError> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape,
            data: Data::I64(Arc::new(data)),
        })
    }

    /// An `f32` tensor sharing already reference-counted data (no copy).
    pub fn from_f32_arc(shape: Vec<usize>, data: Arc<Vec<f32>>) -> Result<Tensor, NnError> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape,
            data: Data::F32(data),
        })
    }

    /// A rank-0 `f32` tensor.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: Data::F32(Arc::new(vec![v])),
        }
    }

    /// A zero-filled `f32` tensor of the given shape.
    pub fn zeros_f32(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: Data::F32(Arc::new(vec![0.0; n])),
        }
    }

    /// The shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::F32(_) => DType::F32,
            Data::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(d) => d.len(),
            Data::I64(d) => d.len(),
        }
    }

    /// True if the tensor has no element (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data if the tensor is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(d) => Some(d),
            Data::I64(_) => None,
        }
    }

    /// The data if the tensor is `i64`.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(d) => Some(d),
            Data::F32(_) => None,
        }
    }

    /// Mutable data if the tensor is `f32`; copies the data first if it is shared
    /// with another tensor (copy-on-write).
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(d) => Some(Arc::make_mut(d).as_mut_slice()),
            Data::I64(_) => None,
        }
    }

    /// The shared `f32` buffer (no copy), if the tensor is `f32`.
    pub fn f32_arc(&self) -> Option<&Arc<Vec<f32>>> {
        match &self.data {
            Data::F32(d) => Some(d),
            Data::I64(_) => None,
        }
    }

    /// The data as `f32`, or an error naming the actual dtype.
    pub fn f32s(&self) -> Result<&[f32], NnError> {
        self.as_f32().ok_or(NnError::DType {
            expected: "f32",
            got: self.dtype().name(),
        })
    }

    /// The data as `i64`, or an error naming the actual dtype.
    pub fn i64s(&self) -> Result<&[i64], NnError> {
        self.as_i64().ok_or(NnError::DType {
            expected: "i64",
            got: self.dtype().name(),
        })
    }

    /// Takes the `f32` data out (no copy unless shared); errors if the tensor is `i64`.
    pub fn into_f32(self) -> Result<Vec<f32>, NnError> {
        match self.data {
            Data::F32(d) => Ok(Arc::try_unwrap(d).unwrap_or_else(|d| (*d).clone())),
            Data::I64(_) => Err(NnError::DType {
                expected: "f32",
                got: "i64",
            }),
        }
    }

    /// The `f32` data if this tensor is its only holder (no copy), else `None`.
    pub fn into_unique_f32(self) -> Option<Vec<f32>> {
        match self.data {
            Data::F32(d) => Arc::try_unwrap(d).ok(),
            Data::I64(_) => None,
        }
    }

    /// Takes the `i64` data out (no copy unless shared); errors if the tensor is `f32`.
    pub fn into_i64(self) -> Result<Vec<i64>, NnError> {
        match self.data {
            Data::I64(d) => Ok(Arc::try_unwrap(d).unwrap_or_else(|d| (*d).clone())),
            Data::F32(_) => Err(NnError::DType {
                expected: "i64",
                got: "f32",
            }),
        }
    }

    /// The same data under another shape with the same element count (no copy).
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<Tensor, NnError> {
        check_len(&shape, self.len())?;
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// Index of the first NaN or infinite element and its value, if any (`i64` tensors
    /// never have one).
    #[allow(clippy::eq_op)]
    pub fn first_non_finite(&self) -> Option<(usize, f32)> {
        const CHUNK: usize = 1024;
        let data = self.as_f32()?;
        for (ci, chunk) in data.chunks(CHUNK).enumerate() {
            // `x - x` is NaN exactly for NaN and +-inf; 16 independent lanes vectorise.
            let mut acc = [0.0f32; 16];
            let mut lanes = chunk.chunks_exact(16);
            for c in &mut lanes {
                for (a, &x) in acc.iter_mut().zip(c) {
                    *a += x - x;
                }
            }
            let tail_bad = lanes.remainder().iter().any(|v| !v.is_finite());
            if tail_bad || acc.iter().any(|a| a.is_nan()) {
                let i = chunk.iter().position(|v| !v.is_finite())?;
                return Some((ci * CHUNK + i, chunk[i]));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked() {
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 5]).is_err());
        let t = Tensor::from_f32(vec![2, 3], vec![1.0; 6]).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.len(), 6);
        assert_eq!(t.dtype(), DType::F32);
        assert!(t.as_i64().is_none());
        assert!(Tensor::from_i64(vec![], vec![]).is_err());
    }

    #[test]
    fn copy_on_write_keeps_clones_apart() {
        let a = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        let mut b = a.clone();
        b.as_f32_mut().unwrap()[0] = 5.0;
        assert_eq!(a.as_f32().unwrap(), &[1.0, 2.0]);
        assert_eq!(b.into_f32().unwrap(), vec![5.0, 2.0]);
    }

    #[test]
    fn non_finite_is_found() {
        let t = Tensor::from_f32(vec![3], vec![1.0, f32::NAN, f32::INFINITY]).unwrap();
        assert_eq!(t.first_non_finite().map(|x| x.0), Some(1));
        assert!(Tensor::from_i64(vec![1], vec![3])
            .unwrap()
            .first_non_finite()
            .is_none());
    }
}
