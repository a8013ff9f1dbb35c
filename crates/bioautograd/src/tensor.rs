//! [`Device`], [`Storage`] and [`Tensor`].
//!
//! A tensor is a shape, a device and a storage: a CPU buffer (`Arc<Vec<T>>`, so cloning a
//! tensor into the tape is cheap and an optimizer can still get a `&mut [T]` once the tape is
//! gone, copy-on-write) or, for `f32` tensors, a CUDA buffer ([`CudaBuffer`], shared the same
//! way). Call sites never need `#[cfg]`: without the `cuda` feature a CUDA request returns
//! [`Error::CudaUnavailable`], with it and no usable GPU [`Error::NoCudaDevice`].
//!
//! Host access ([`Tensor::as_slice`], [`Tensor::data_mut`]) of a CUDA tensor is a typed error
//! ([`Error::UnsupportedOnDevice`]); [`Tensor::to_vec`] downloads and [`Tensor::to_device`]
//! moves either way.

use std::sync::Arc;

use crate::cuda::{mat_dims, CudaBuffer};
use crate::error::{Error, Result};
use crate::float::Float;

/// Where a tensor lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory.
    #[default]
    Cpu,
    /// A CUDA device by ordinal (opened once per process on first use);
    /// `Cuda(`[`crate::cuda::EMULATOR`]`)` is the host emulator of the device backend (tests).
    Cuda(usize),
}

impl Device {
    /// `Ok` for a device this build and machine can use (opens a CUDA device on first use).
    ///
    /// # Errors
    /// [`Error::CudaUnavailable`] without the `cuda` feature, [`Error::NoCudaDevice`] when the
    /// device cannot be used.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => crate::cuda::backend(i).map(|_| ()),
        }
    }

    /// `true` for a CUDA device.
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

/// The memory behind a tensor.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Storage<T> {
    /// A host buffer, row-major (C order).
    Cpu(Arc<Vec<T>>),
    /// An `f32` buffer on a CUDA device, row-major (only `Tensor<f32>` has one).
    Cuda(CudaBuffer),
}

/// An n-dimensional array of `T` (`f32` by default), row-major, with its shape and device.
#[derive(Debug, Clone)]
pub struct Tensor<T: Float = f32> {
    shape: Vec<usize>,
    storage: Storage<T>,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl<T: Float> Tensor<T> {
    /// A tensor of `shape` on `device` holding `data` (row-major).
    ///
    /// # Errors
    /// [`Error::DataLength`] if `data.len()` is not the product of `shape`, and the errors of
    /// [`Tensor::to_device`].
    pub fn new(data: Vec<T>, shape: &[usize], device: Device) -> Result<Self> {
        if data.len() != numel(shape) {
            return Err(Error::DataLength {
                shape: shape.to_vec(),
                len: data.len(),
            });
        }
        Tensor::from_parts(data, shape.to_vec()).to_device(device)
    }

    /// A CPU tensor (see [`Tensor::new`]).
    ///
    /// # Errors
    /// [`Error::DataLength`].
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        Self::new(data, shape, Device::Cpu)
    }

    /// A CPU tensor whose element count is known to match (internal constructor).
    pub(crate) fn from_parts(data: Vec<T>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(data.len(), numel(&shape));
        Tensor {
            shape,
            storage: Storage::Cpu(Arc::new(data)),
        }
    }

    /// A rank-0 tensor.
    pub fn scalar(v: T) -> Self {
        Self::from_parts(vec![v], Vec::new())
    }

    /// All zeros.
    ///
    /// # Errors
    /// As [`Tensor::new`].
    pub fn zeros(shape: &[usize], device: Device) -> Result<Self> {
        Self::new(vec![T::ZERO; numel(shape)], shape, device)
    }

    /// All ones.
    ///
    /// # Errors
    /// As [`Tensor::new`].
    pub fn ones(shape: &[usize], device: Device) -> Result<Self> {
        Self::new(vec![T::ONE; numel(shape)], shape, device)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The device.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(b) => b.device(),
        }
    }

    /// `true` for a tensor on a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self.storage, Storage::Cuda(_))
    }

    /// The storage.
    pub fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    /// A tensor of `shape` holding a device buffer of as many values (internal constructor).
    pub(crate) fn from_cuda(buf: CudaBuffer, shape: Vec<usize>) -> Self {
        debug_assert_eq!(buf.len(), numel(&shape));
        Tensor {
            shape,
            storage: Storage::Cuda(buf),
        }
    }

    /// The device buffer of a CUDA tensor; `None` on the host.
    pub fn cuda_buffer(&self) -> Option<&CudaBuffer> {
        match &self.storage {
            Storage::Cuda(b) => Some(b),
            Storage::Cpu(_) => None,
        }
    }

    /// The device buffer of a CUDA tensor, mutable (copy-on-write: a device copy first if
    /// another tensor shares it); what a device optimizer updates in place.
    ///
    /// # Errors
    /// [`Error::UnsupportedOnDevice`] (op `cuda_buffer_mut`) for a host tensor.
    pub fn cuda_buffer_mut(&mut self) -> Result<&mut CudaBuffer> {
        match &mut self.storage {
            Storage::Cuda(b) => Ok(b),
            Storage::Cpu(_) => Err(Error::UnsupportedOnDevice {
                op: "cuda_buffer_mut",
                device: Device::Cpu,
            }),
        }
    }

    /// The values, row-major (host tensors only).
    ///
    /// # Errors
    /// [`Error::UnsupportedOnDevice`] (op `as_slice`) for a CUDA tensor: read it with
    /// [`Tensor::to_vec`] or move it with [`Tensor::to_device`].
    pub fn as_slice(&self) -> Result<&[T]> {
        self.host_slice("as_slice")
    }

    /// [`Tensor::as_slice`] with the op named in the error.
    pub(crate) fn host_slice(&self, op: &'static str) -> Result<&[T]> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v.as_slice()),
            Storage::Cuda(b) => Err(Error::UnsupportedOnDevice { op, device: b.device() }),
        }
    }

    /// Mutable values, row-major; copies the buffer first if another tensor shares it
    /// (copy-on-write). This is what an optimizer updates in place.
    ///
    /// # Errors
    /// [`Error::UnsupportedOnDevice`] (op `data_mut`) for a CUDA tensor.
    pub fn data_mut(&mut self) -> Result<&mut [T]> {
        match &mut self.storage {
            Storage::Cpu(v) => Ok(Arc::make_mut(v).as_mut_slice()),
            Storage::Cuda(b) => Err(Error::UnsupportedOnDevice {
                op: "data_mut",
                device: b.device(),
            }),
        }
    }

    /// A copy of the values on the host (downloads a CUDA tensor).
    ///
    /// # Errors
    /// Kernel errors of the download.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v.to_vec()),
            Storage::Cuda(b) => T::from_f32_vec(b.download()?).ok_or(Error::UnsupportedDtype {
                op: "to_vec",
                dtype: T::NAME,
                device: b.device(),
            }),
        }
    }

    /// The same values as another element type (`f64` ↔ `f32`), on the host.
    ///
    /// # Errors
    /// [`Error::UnsupportedOnDevice`] (op `cast`) for a CUDA tensor.
    pub fn cast<U: Float>(&self) -> Result<Tensor<U>> {
        let data = self
            .host_slice("cast")?
            .iter()
            .map(|v| U::from_f64(v.to_f64()))
            .collect();
        Ok(Tensor::from_parts(data, self.shape.clone()))
    }

    /// A copy on `device` (the same buffer when it is already there): uploads to a CUDA
    /// device, downloads to the host.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] for an `f64` tensor on CUDA (checked first: it does not
    /// depend on the machine), [`Error::CudaUnavailable`] / [`Error::NoCudaDevice`] for a CUDA
    /// device this build or machine cannot use, and kernel errors of the transfer.
    pub fn to_device(&self, device: Device) -> Result<Self> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let host;
        let values: &[T] = match &self.storage {
            Storage::Cpu(v) => v,
            Storage::Cuda(_) => {
                host = self.to_vec()?;
                &host
            }
        };
        match device {
            Device::Cpu => Ok(Tensor::from_parts(values.to_vec(), self.shape.clone())),
            Device::Cuda(ordinal) => {
                let f = T::as_f32_slice(values).ok_or(Error::UnsupportedDtype {
                    op: "to_device",
                    dtype: T::NAME,
                    device,
                })?;
                let (rows, cols) = mat_dims(&self.shape);
                let buf = CudaBuffer::upload(ordinal, f, rows, cols)?;
                Ok(Tensor::from_cuda(buf, self.shape.clone()))
            }
        }
    }

    /// The same values with another shape of the same element count.
    ///
    /// # Errors
    /// [`Error::Reshape`].
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            return Err(Error::Reshape {
                op: "reshape",
                from: self.shape.clone(),
                to: shape.to_vec(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            storage: self.storage.clone(),
        })
    }
}
