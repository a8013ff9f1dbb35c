//! The committed PTX of `kernels/*.cu`, kept inside this crate (`crates/biokernels/ptx/`, so the
//! crate packages alone) and embedded at compile time (regenerate with `cargo xtask ptx`;
//! `cargo xtask ptx --check` verifies that these files are what the sources compile to).
//!
//! Each module exists for `compute_80` (A100 and newer; the driver JIT-compiles it for the
//! device) and `compute_90` (H100/H200). Both are PTX ISA 9.0, what the pinned nvcc 13.0 emits
//! and what a CUDA 13.0 driver accepts. Beside each PTX is its cubin for `sm_80` / `sm_90`
//! (`ptxas` of the same toolkit): a device of those families loads the cubin without the JIT
//! (which took seconds per device open for the 1.6 MB masked-GEMM PTX); any other, or a driver
//! that refuses the cubin, falls back to the PTX.

/// `kernels/masked_gemm/masked_gemm.cu` for `compute_80`.
pub const MASKED_GEMM_COMPUTE_80: &str = include_str!("../../ptx/masked_gemm.compute_80.ptx");
/// `kernels/masked_gemm/masked_gemm.cu` for `compute_90`.
pub const MASKED_GEMM_COMPUTE_90: &str = include_str!("../../ptx/masked_gemm.compute_90.ptx");

/// `kernels/train/train.cu` for `compute_80`.
pub const TRAIN_COMPUTE_80: &str = include_str!("../../ptx/train.compute_80.ptx");
/// `kernels/train/train.cu` for `compute_90`.
pub const TRAIN_COMPUTE_90: &str = include_str!("../../ptx/train.compute_90.ptx");

/// `kernels/masked_gemm/masked_gemm.cu` assembled for `sm_80` (`ptxas`, by `cargo xtask ptx`).
pub const MASKED_GEMM_SM80: &[u8] = include_bytes!("../../ptx/masked_gemm.sm_80.cubin");
/// `kernels/masked_gemm/masked_gemm.cu` assembled for `sm_90`.
pub const MASKED_GEMM_SM90: &[u8] = include_bytes!("../../ptx/masked_gemm.sm_90.cubin");
/// `kernels/train/train.cu` assembled for `sm_80`.
pub const TRAIN_SM80: &[u8] = include_bytes!("../../ptx/train.sm_80.cubin");
/// `kernels/train/train.cu` assembled for `sm_90`.
pub const TRAIN_SM90: &[u8] = include_bytes!("../../ptx/train.sm_90.cubin");

/// The PTX ISA of the committed PTX, and the oldest driver that accepts it.
pub const PTX_ISA: &str = "9.0";
/// The CUDA version of the oldest driver that JIT-compiles [`PTX_ISA`].
pub const MIN_DRIVER: &str = "13.0";

/// One kernel module in every form it ships in.
#[derive(Debug, Clone, Copy)]
pub struct KernelModule {
    /// For messages: the source file's stem.
    pub name: &'static str,
    /// PTX for `compute_80`.
    pub ptx_compute80: &'static str,
    /// PTX for `compute_90`.
    pub ptx_compute90: &'static str,
    /// Cubin for `sm_80` (runs on every 8.x device).
    pub cubin_sm80: &'static [u8],
    /// Cubin for `sm_90` (runs on every 9.x device).
    pub cubin_sm90: &'static [u8],
}

/// The masked GEMM and convolution kernels.
pub const MASKED_GEMM: KernelModule = KernelModule {
    name: "masked_gemm",
    ptx_compute80: MASKED_GEMM_COMPUTE_80,
    ptx_compute90: MASKED_GEMM_COMPUTE_90,
    cubin_sm80: MASKED_GEMM_SM80,
    cubin_sm90: MASKED_GEMM_SM90,
};

/// The training kernels.
pub const TRAIN: KernelModule = KernelModule {
    name: "train",
    ptx_compute80: TRAIN_COMPUTE_80,
    ptx_compute90: TRAIN_COMPUTE_90,
    cubin_sm80: TRAIN_SM80,
    cubin_sm90: TRAIN_SM90,
};

/// The kernels of the training module (activations, bias, softmax cross-entropy, optimizers,
/// elementwise ops, reductions, MSE, max and average pooling, dropout, batch and group norm, row softmax, BCE, plane maps, bf16 operands).
pub const TRAIN_KERNELS: [&str; 36] = [
    "relu_fwd",
    "relu_bwd",
    "bias_add_rows",
    "bias_add_nchw",
    "bias_grad_rows",
    "bias_grad_nchw",
    "softmax_xent",
    "adam_step",
    "rmsprop_step",
    "unary_fwd",
    "unary_bwd",
    "leaky_relu_fwd",
    "leaky_relu_bwd",
    "norm_stats",
    "norm_apply",
    "norm_grad_sums",
    "norm_grad_input",
    "softmax_rows_fwd",
    "softmax_rows_bwd",
    "bce_logits",
    "binary_ew",
    "sign_diff",
    "axpby",
    "fill_f32",
    "dropout_apply",
    "mse_grad",
    "sum_all",
    "mse_loss",
    "sum_rows",
    "max_pool2d_fwd",
    "max_pool2d_bwd",
    "avg_pool2d_fwd",
    "avg_pool2d_bwd",
    "copy_cols",
    "plane_map",
    "f32_to_bf16",
];

/// The kernels (`extern "C"` entry points) of the masked GEMM module (GEMM and conv).
pub const MASKED_GEMM_KERNELS: [&str; 18] = [
    "masked_gemm_fwd_f32",
    "masked_gemm_fwd_tf32",
    "masked_gemm_fwd_bf16",
    "masked_gemm_dx_f32",
    "masked_gemm_dx_tf32",
    "masked_gemm_dx_bf16",
    "masked_gemm_dw_f32",
    "masked_gemm_dw_tf32",
    "masked_gemm_dw_bf16",
    "masked_conv2d_fwd_f32",
    "masked_conv2d_fwd_tf32",
    "masked_conv2d_fwd_bf16",
    "masked_conv2d_dx_f32",
    "masked_conv2d_dx_tf32",
    "masked_conv2d_dx_bf16",
    "masked_conv2d_dw_f32",
    "masked_conv2d_dw_tf32",
    "masked_conv2d_dw_bf16",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_ptx_has_every_kernel_and_the_driver_compatible_isa() {
        for (ptx, target) in [(MASKED_GEMM_COMPUTE_80, "sm_80"), (MASKED_GEMM_COMPUTE_90, "sm_90")] {
            assert!(
                ptx.contains(".version 9.0"),
                "PTX ISA must be 9.0 for a CUDA 13.0 driver"
            );
            assert!(ptx.contains(&format!(".target {target}")));
            for k in MASKED_GEMM_KERNELS {
                assert!(ptx.contains(&format!(".entry {k}(")), "{k} missing for {target}");
            }
        }
        for (ptx, target) in [(TRAIN_COMPUTE_80, "sm_80"), (TRAIN_COMPUTE_90, "sm_90")] {
            assert!(ptx.contains(".version 9.0") && ptx.contains(&format!(".target {target}")));
            for k in TRAIN_KERNELS {
                assert!(ptx.contains(&format!(".entry {k}(")), "{k} missing for {target}");
            }
        }
        // The cubins are ELF images for their architecture, carrying every kernel's name.
        for m in [MASKED_GEMM, TRAIN] {
            let kernels: &[&str] = if m.name == "train" {
                &TRAIN_KERNELS
            } else {
                &MASKED_GEMM_KERNELS
            };
            for bin in [m.cubin_sm80, m.cubin_sm90] {
                assert_eq!(&bin[..4], b"\x7fELF", "{} cubin is not an ELF image", m.name);
                for k in kernels {
                    assert!(
                        bin.windows(k.len() + 1)
                            .any(|w| &w[..k.len()] == k.as_bytes() && w[k.len()] == 0),
                        "{k} missing from a {} cubin",
                        m.name
                    );
                }
            }
        }
        // The tensor-core paths really use tensor cores.
        assert!(MASKED_GEMM_COMPUTE_90.contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
        assert!(MASKED_GEMM_COMPUTE_90.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"));
    }
}
