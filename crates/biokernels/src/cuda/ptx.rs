//! The committed PTX of `kernels/*.cu`, kept inside this crate (`crates/biokernels/ptx/`, so the
//! crate packages alone) and embedded at compile time (regenerate with `cargo xtask ptx`;
//! `cargo xtask ptx --check` verifies that these files are what the sources compile to).
//!
//! Each module exists for `compute_80` (A100 and newer; the driver JIT-compiles it for the
//! device) and `compute_90` (H100/H200). Both are PTX ISA 9.0, what the pinned nvcc 13.0 emits
//! and what a CUDA 13.0 driver accepts.

/// `kernels/masked_gemm/masked_gemm.cu` for `compute_80`.
pub const MASKED_GEMM_COMPUTE_80: &str = include_str!("../../ptx/masked_gemm.compute_80.ptx");
/// `kernels/masked_gemm/masked_gemm.cu` for `compute_90`.
pub const MASKED_GEMM_COMPUTE_90: &str = include_str!("../../ptx/masked_gemm.compute_90.ptx");

/// `kernels/train/train.cu` for `compute_80`.
pub const TRAIN_COMPUTE_80: &str = include_str!("../../ptx/train.compute_80.ptx");
/// `kernels/train/train.cu` for `compute_90`.
pub const TRAIN_COMPUTE_90: &str = include_str!("../../ptx/train.compute_90.ptx");

/// The kernels of the training module (activations, bias, softmax cross-entropy, optimizers,
/// elementwise ops, reductions, MSE, max pooling, dropout).
pub const TRAIN_KERNELS: [&str; 22] = [
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
    "binary_ew",
    "axpby",
    "fill_f32",
    "dropout_apply",
    "mse_grad",
    "sum_all",
    "mse_loss",
    "sum_rows",
    "max_pool2d_fwd",
    "max_pool2d_bwd",
    "copy_cols",
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
        // The tensor-core paths really use tensor cores.
        assert!(MASKED_GEMM_COMPUTE_90.contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
        assert!(MASKED_GEMM_COMPUTE_90.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"));
    }
}
