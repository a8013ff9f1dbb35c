//! What every device test shares: the devices, random inputs, the error measure.

pub use std::io::Write;

pub use biokernels::cuda::{masked_gemm_host, CudaDevice, GemmOp, Precision};
pub use biokernels::gemm::{masked_matmul, masked_matmul_dw, masked_matmul_dx, Beta, MatMut, MatRef};
pub use biokernels::{Conv2dGeometry, ConvMask, Error, Padding, TileMap, TileSize};

pub enum Device {
    Cpu,
    Cuda(CudaDevice),
}

impl Device {
    pub fn label(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(d) => format!("cuda:0 ({})", d.name()),
        }
    }
    /// The precisions this device runs: the CPU path is f32 only.
    pub fn precisions(&self) -> Vec<Precision> {
        match self {
            Device::Cpu => vec![Precision::F32],
            Device::Cuda(_) => Precision::ALL.to_vec(),
        }
    }
}

/// The CPU and, when present, CUDA device 0. A missing CUDA device is reported on the real
/// stderr (bypassing capture) or, with `BIOKERNELS_REQUIRE_CUDA=1`, fails the test.
pub fn devices(test: &str) -> Vec<Device> {
    let mut out = vec![Device::Cpu];
    match CudaDevice::new(0) {
        Ok(d) => out.push(Device::Cuda(d)),
        Err(e) => {
            assert!(
                matches!(e, Error::CudaUnavailable | Error::NoCudaDevice { .. }),
                "a missing GPU must be a typed 'no CUDA' error, got {e:?}"
            );
            if std::env::var("BIOKERNELS_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("{test}: BIOKERNELS_REQUIRE_CUDA=1 but {e}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED cuda:0 in {test}: {e} (ran on cpu only)");
        }
    }
    out
}

/// xorshift values in [-1, 1), never 0.
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = ((s >> 40) as f32 + 0.5) / (1u64 << 23) as f32 - 1.0;
            if v == 0.0 {
                0.25
            } else {
                v
            }
        })
        .collect()
}

pub fn rel_error(out: &[f32], reference: &[f64]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (f64::from(o) - r).powi(2);
        den += r * r;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}
