//! Model weights in and out in **PyTorch** and **Keras** names and layouts, as `safetensors`
//! (what PyTorch and Hugging Face users load with one call) or `.npz`.
//!
//! Every leaf layer of a model ([`visit_layers`]) maps to named tensors. With `P` the layer's
//! path (`"0"`, `"2.main.1"`; the empty path of a model that is a single layer drops the `P.`)
//! and `K` its Keras layer name (Keras' automatic names: `dense`, `dense_1`, `conv2d`, ...,
//! numbered per class in model order):
//!
//! | layer | [`WeightLayout::Torch`] | [`WeightLayout::Keras`] |
//! |---|---|---|
//! | [`Dense`] | `P.weight [out, in]`, `P.bias [out]`, `P.mask [out, in]` | `K/kernel (in, out)`, `K/bias`, `K/mask (in, out)` |
//! | [`Conv2d`] | `P.weight [out, in/g, kh, kw]`, `P.bias`, `P.mask` (as the weight) | `K/kernel (kh, kw, in/g, out)`, `K/bias`, `K/mask` |
//! | [`Conv2d`] transposed | `P.weight [in, out/g, kh, kw]` (`ConvTranspose2d`), `P.bias`, `P.mask` | `K/kernel (kh, kw, out/g, in)` (`Conv2DTranspose`) |
//! | [`BatchNorm2d`] | `P.weight`, `P.bias`, `P.running_mean`, `P.running_var`, `P.num_batches_tracked` (int64, 0: not counted here) | `K/gamma`, `K/beta`, `K/moving_mean`, `K/moving_variance` |
//! | [`ElmanRnn`] | upstream's `nn.RNN` + `fc`: `P.rnn.weight_ih_l0 [H, in]`, `P.rnn.weight_hh_l0 [H, H]` (`[to, from]`), `P.rnn.bias_ih_l0`, `P.rnn.bias_hh_l0`, `P.rnn.mask [H, H]` (the topology, as the weight), `P.fc.weight [out, H]`, `P.fc.bias` | `SimpleRNN` + `Dense`: `K/kernel (in, H)`, `K/recurrent_kernel (H, H)` (`[from, to]`), `K/bias` = `b_ih + b_hh` (Keras has one bias; imported as `b_ih`, `b_hh = 0`), `K/mask (H, H)`, readout `K'/kernel (H, out)`, `K'/bias` |
//! | [`ConvLstm`] | no PyTorch equivalent: its Keras tensors under `P.kernel`, `P.recurrent_kernel`, `P.bias` | `K/kernel (kh, kw, in, 4F)`, `K/recurrent_kernel (kh, kw, F, 4F)`, `K/bias (4F)` |
//! | [`FilterBankLayer`] | a conv: `P.weight`, `P.bias` | `K/kernel`, `K/bias` (`conv2d` names) |
//!
//! A mask (`mask`) is written for masked layers only, in the same layout as its weight: the
//! values the forward pass multiplies the weight by (the 0/1 support; the gaussian window of a
//! gaussian `SzDense`), so a PyTorch layer computing `x @ (weight * mask).T + bias` gives this
//! layer's output. Activations, pooling, flatten and dropout have no tensors.
//!
//! Import ([`import_tensors`], [`load_weights`]) is all or nothing: every tensor the model needs
//! must be present with its shape and dtype (f32; `num_batches_tracked` int64), no other tensor
//! may be present, masks must equal the model's (a mask is architecture, not a weight), and an
//! RNN's recurrent weight must be 0 off its topology; otherwise a typed error names the tensor
//! and the model is unchanged.
//!
//! Byte order: tensors are stored little-endian (both formats say so); the f32 ↔ byte casts go
//! through `bytemuck`, which is exact on the little-endian machines this project builds for.
//!
//! # Shapes
//! As in the table; `[...]` are PyTorch shapes, `(...)` Keras shapes, all C order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use biomask::MaskForm;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::filters::FilterBankLayer;
use crate::io::{load_npz, save_npz, NamedArray};
use crate::layers::{layer_at_mut, visit_layers, BatchNorm2d, Conv2d, ConvLstm, Dense, ElmanRnn, Module};
use bioautograd::Tensor;

/// Whose names and tensor layouts a weight file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// PyTorch `state_dict` names (`0.weight`) and layouts (`[out, in]`, `[out, in, kh, kw]`).
    Torch,
    /// Keras variable paths (`dense/kernel`) and layouts (`(in, out)`, `(kh, kw, in, out)`).
    Keras,
}

impl WeightLayout {
    /// `"torch"` or `"keras"` (the safetensors metadata value and the command-line spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            WeightLayout::Torch => "torch",
            WeightLayout::Keras => "keras",
        }
    }
}

impl std::str::FromStr for WeightLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "torch" => Ok(WeightLayout::Torch),
            "keras" => Ok(WeightLayout::Keras),
            other => Err(crate::error::invalid("layout", other, "expected torch or keras")),
        }
    }
}

/// The file format of [`save_weights`] / [`load_weights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `safetensors` (`safetensors.torch.load_file(path)`).
    Safetensors,
    /// `.npz` (`numpy.load(path)`); int64 tensors are stored as f32 there.
    Npz,
}

impl std::str::FromStr for WeightFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "safetensors" => Ok(WeightFormat::Safetensors),
            "npz" => Ok(WeightFormat::Npz),
            other => Err(crate::error::invalid("format", other, "expected safetensors or npz")),
        }
    }
}

/// Values of one exported tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    /// float32 (every weight, bias, mask and statistic).
    F32(Vec<f32>),
    /// int64 (`num_batches_tracked`).
    I64(Vec<i64>),
}

/// One named tensor in a weight file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTensor {
    /// Its name in the file (`0.weight`, `dense/kernel`).
    pub name: String,
    /// Its shape in the file's layout.
    pub shape: Vec<usize>,
    /// Its values, C order of `shape`.
    pub values: TensorValues,
}

/// Where an imported tensor goes in the layer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// The layer's parameter of this name.
    Param(&'static str),
    /// The layer's buffer of this name.
    Buffer(&'static str),
    /// The fixed kernel / bias of a filter-bank layer (not parameters when frozen).
    FilterKernel,
    FilterBias,
    /// Checked against the model's mask, never written.
    Mask,
    /// `num_batches_tracked`: int64, accepted and not kept.
    BatchCount,
    /// Keras `SimpleRNN`'s one bias: becomes `b_ih`, with `b_hh = 0`.
    RnnBiasSum,
    /// A recurrent weight that must be 0 off the topology (`W_hh`).
    Recurrent,
}

/// A checked value for one target of a layer: `(target, shape in our layout, values)`.
type Update = (Target, Vec<usize>, Vec<f32>);

/// One tensor of a layer: its file name, the axes that take our layout to the file's, and its
/// value in our layout.
struct Slot {
    name: String,
    ours_shape: Vec<usize>,
    /// `file axis k = our axis axes[k]`.
    axes: Vec<usize>,
    values: Vec<f32>,
    target: Target,
}

impl Slot {
    fn file_shape(&self) -> Vec<usize> {
        self.axes.iter().map(|&a| self.ours_shape[a]).collect()
    }
}

/// Permutes a C-order tensor of `shape`: output axis `k` is input axis `axes[k]`.
fn permute(data: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
    let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let mut in_strides = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[k] = in_strides[k + 1] * shape[k + 1];
    }
    let strides: Vec<usize> = axes.iter().map(|&a| in_strides[a]).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; out_shape.len()];
    for _ in 0..data.len() {
        let src: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(data[src]);
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < out_shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

fn inverse(axes: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; axes.len()];
    for (k, &a) in axes.iter().enumerate() {
        inv[a] = k;
    }
    inv
}

/// Keras' automatic layer names: `dense`, `dense_1`, ... per class.
#[derive(Default)]
struct KerasNames(HashMap<&'static str, usize>);

impl KerasNames {
    fn next(&mut self, class: &'static str) -> String {
        let n = self.0.entry(class).or_insert(0);
        let name = if *n == 0 {
            class.to_string()
        } else {
            format!("{class}_{n}")
        };
        *n += 1;
        name
    }
}

fn tensor_error(path: &Path, tensor: &str, detail: impl Into<String>) -> Error {
    Error::WeightFile {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        detail: detail.into(),
    }
}

/// Whether a parameter called `full` is the layer's `name`: a layer inside a [`Residual`]
/// branch has its parameters qualified (`main.0.conv2d.kernel`).
///
/// [`Residual`]: crate::layers::Residual
fn param_is(full: &str, name: &str) -> bool {
    full == name || full.strip_suffix(name).is_some_and(|rest| rest.ends_with('.'))
}

fn param_values(layer: &dyn Module, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let p = layer
        .params()
        .into_iter()
        .find(|p| param_is(&p.name, name))
        .ok_or_else(|| crate::error::invalid("parameter", name, format!("{} has no such parameter", layer.name())))?;
    Ok((p.value.shape().to_vec(), p.value.to_vec()?))
}

/// The tensors of one leaf layer (see the module table).
fn layer_slots(layer: &dyn Module, path: &str, layout: WeightLayout, keras: &mut KerasNames) -> Result<Vec<Slot>> {
    let torch = layout == WeightLayout::Torch;
    let join = |prefix: &str, leaf: &str| {
        if prefix.is_empty() {
            leaf.to_string()
        } else if torch {
            format!("{prefix}.{leaf}")
        } else {
            format!("{prefix}/{leaf}")
        }
    };
    let slot = |name: String, (shape, values): (Vec<usize>, Vec<f32>), axes: Vec<usize>, target| Slot {
        name,
        ours_shape: shape,
        axes,
        values,
        target,
    };
    let id = |n: usize| (0..n).collect::<Vec<_>>();
    let any = layer.as_any();
    let mut slots = Vec::new();
    if let Some(d) = any.and_then(|a| a.downcast_ref::<Dense>()) {
        let (prefix, axes) = if torch {
            (path.to_string(), vec![1, 0])
        } else {
            (keras.next("dense"), id(2))
        };
        let (w, b) = if torch { ("weight", "bias") } else { ("kernel", "bias") };
        let kernel = param_values(layer, "kernel")?;
        let mask = (d.mask().form() != MaskForm::Full).then(|| (kernel.0.clone(), d.mask().keras_values()));
        slots.push(slot(join(&prefix, w), kernel, axes.clone(), Target::Param("kernel")));
        if d.config().use_bias {
            slots.push(slot(
                join(&prefix, b),
                param_values(layer, "bias")?,
                id(1),
                Target::Param("bias"),
            ));
        }
        if let Some(mask) = mask {
            slots.push(slot(join(&prefix, "mask"), mask, axes, Target::Mask));
        }
    } else if let Some(c) = any.and_then(|a| a.downcast_ref::<Conv2d>()) {
        let (prefix, axes) = if torch {
            (path.to_string(), vec![3, 2, 0, 1])
        } else {
            let class = if c.config().transposed {
                "conv2d_transpose"
            } else {
                "conv2d"
            };
            (keras.next(class), id(4))
        };
        let w = if torch { "weight" } else { "kernel" };
        let kernel = param_values(layer, "kernel")?;
        let mask = (c.mask().form() != MaskForm::Full).then(|| (kernel.0.clone(), c.mask().keras_values()));
        slots.push(slot(join(&prefix, w), kernel, axes.clone(), Target::Param("kernel")));
        if c.config().use_bias {
            slots.push(slot(
                join(&prefix, "bias"),
                param_values(layer, "bias")?,
                id(1),
                Target::Param("bias"),
            ));
        }
        if let Some(mask) = mask {
            slots.push(slot(join(&prefix, "mask"), mask, axes, Target::Mask));
        }
    } else if any.and_then(|a| a.downcast_ref::<BatchNorm2d>()).is_some() {
        let buffers = layer.buffers();
        let buffer = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let v = buffers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| crate::error::invalid("buffer", name, "batchnorm2d lacks it"))?;
            Ok((vec![v.len()], v))
        };
        let prefix = if torch {
            path.to_string()
        } else {
            keras.next("batch_normalization")
        };
        let names = if torch {
            ["weight", "bias", "running_mean", "running_var"]
        } else {
            ["gamma", "beta", "moving_mean", "moving_variance"]
        };
        slots.push(slot(
            join(&prefix, names[0]),
            param_values(layer, "gamma")?,
            id(1),
            Target::Param("gamma"),
        ));
        slots.push(slot(
            join(&prefix, names[1]),
            param_values(layer, "beta")?,
            id(1),
            Target::Param("beta"),
        ));
        slots.push(slot(
            join(&prefix, names[2]),
            buffer("running_mean")?,
            id(1),
            Target::Buffer("running_mean"),
        ));
        slots.push(slot(
            join(&prefix, names[3]),
            buffer("running_var")?,
            id(1),
            Target::Buffer("running_var"),
        ));
        if torch {
            slots.push(slot(
                join(&prefix, "num_batches_tracked"),
                (Vec::new(), vec![0.0]),
                Vec::new(),
                Target::BatchCount,
            ));
        }
    } else if let Some(r) = any.and_then(|a| a.downcast_ref::<ElmanRnn>()) {
        let h = r.hidden();
        let topology = (
            vec![h, h],
            r.topology().iter().map(|&c| f32::from(u8::from(c))).collect(),
        );
        let w_ih = param_values(layer, "w_ih")?;
        let w_hh = param_values(layer, "w_hh")?;
        let (b_ih, b_hh) = (param_values(layer, "b_ih")?, param_values(layer, "b_hh")?);
        let (w_out, b_out) = (param_values(layer, "w_out")?, param_values(layer, "b_out")?);
        if torch {
            let rnn = join(path, "rnn");
            let fc = join(path, "fc");
            let t = vec![1, 0];
            slots.push(slot(
                format!("{rnn}.weight_ih_l0"),
                w_ih,
                t.clone(),
                Target::Param("w_ih"),
            ));
            slots.push(slot(format!("{rnn}.weight_hh_l0"), w_hh, t.clone(), Target::Recurrent));
            slots.push(slot(format!("{rnn}.bias_ih_l0"), b_ih, id(1), Target::Param("b_ih")));
            slots.push(slot(format!("{rnn}.bias_hh_l0"), b_hh, id(1), Target::Param("b_hh")));
            slots.push(slot(format!("{rnn}.mask"), topology, t.clone(), Target::Mask));
            slots.push(slot(format!("{fc}.weight"), w_out, t, Target::Param("w_out")));
            slots.push(slot(format!("{fc}.bias"), b_out, id(1), Target::Param("b_out")));
        } else {
            let rnn = keras.next("simple_rnn");
            let fc = keras.next("dense");
            let bias: Vec<f32> = b_ih.1.iter().zip(&b_hh.1).map(|(a, b)| a + b).collect();
            slots.push(slot(format!("{rnn}/kernel"), w_ih, id(2), Target::Param("w_ih")));
            slots.push(slot(format!("{rnn}/recurrent_kernel"), w_hh, id(2), Target::Recurrent));
            slots.push(slot(format!("{rnn}/bias"), (vec![h], bias), id(1), Target::RnnBiasSum));
            slots.push(slot(format!("{rnn}/mask"), topology, id(2), Target::Mask));
            slots.push(slot(format!("{fc}/kernel"), w_out, id(2), Target::Param("w_out")));
            slots.push(slot(format!("{fc}/bias"), b_out, id(1), Target::Param("b_out")));
        }
    } else if any.and_then(|a| a.downcast_ref::<ConvLstm>()).is_some() {
        // No PyTorch module has this layer's weights: its Keras tensors in both layouts.
        let prefix = if torch {
            path.to_string()
        } else {
            keras.next("conv_lstm2d")
        };
        for name in ["kernel", "recurrent_kernel", "bias"] {
            let v = param_values(layer, name)?;
            let rank = v.0.len();
            let target = match name {
                "kernel" => Target::Param("kernel"),
                "recurrent_kernel" => Target::Param("recurrent_kernel"),
                _ => Target::Param("bias"),
            };
            slots.push(slot(join(&prefix, name), v, id(rank), target));
        }
    } else if let Some(f) = any.and_then(|a| a.downcast_ref::<FilterBankLayer>()) {
        let (prefix, axes, w) = if torch {
            (path.to_string(), vec![3, 2, 0, 1], "weight")
        } else {
            (keras.next("conv2d"), id(4), "kernel")
        };
        let kernel = (f.kernel().shape().to_vec(), f.kernel().to_vec()?);
        let bias = (f.bias().shape().to_vec(), f.bias().to_vec()?);
        slots.push(slot(join(&prefix, w), kernel, axes, Target::FilterKernel));
        slots.push(slot(join(&prefix, "bias"), bias, id(1), Target::FilterBias));
    } else if !layer.params().is_empty() || !layer.buffers().is_empty() {
        return Err(crate::error::invalid(
            "layer",
            if path.is_empty() {
                layer.name()
            } else {
                path.to_string()
            },
            format!("`{}` has tensors but no PyTorch/Keras export mapping", layer.name()),
        ));
    }
    Ok(slots)
}

/// Every leaf's path and tensors.
fn model_slots(model: &dyn Module, layout: WeightLayout) -> Result<Vec<(String, Vec<Slot>)>> {
    let mut keras = KerasNames::default();
    visit_layers(model)
        .into_iter()
        .map(|v| Ok((v.path.clone(), layer_slots(v.layer, &v.path, layout, &mut keras)?)))
        .collect()
}

/// The model's tensors with PyTorch or Keras names and layouts, in model order.
///
/// # Errors
/// A layer with parameters but no mapping ([`Error::InvalidConfig`] naming its path); tensor
/// downloads from a device.
pub fn export_tensors(model: &dyn Module, layout: WeightLayout) -> Result<Vec<ExportTensor>> {
    let mut out = Vec::new();
    for (_, slots) in model_slots(model, layout)? {
        for s in slots {
            let values = if s.target == Target::BatchCount {
                TensorValues::I64(vec![0])
            } else {
                TensorValues::F32(permute(&s.values, &s.ours_shape, &s.axes))
            };
            out.push(ExportTensor {
                shape: s.file_shape(),
                name: s.name,
                values,
            });
        }
    }
    Ok(out)
}

/// Loads `tensors` (as [`export_tensors`] names them) into `model`; `origin` names the source
/// in errors. All or nothing: on any error the model is unchanged.
///
/// # Errors
/// [`Error::WeightFile`] naming the tensor: missing, unexpected, wrong shape or dtype, a mask
/// that differs from the model's, a recurrent weight off the topology, a non-finite value.
pub fn import_tensors(
    model: &mut dyn Module,
    layout: WeightLayout,
    tensors: &[ExportTensor],
    origin: &Path,
) -> Result<()> {
    let plan = model_slots(model, layout)?;
    let mut by_name: BTreeMap<&str, &ExportTensor> = BTreeMap::new();
    for t in tensors {
        if by_name.insert(t.name.as_str(), t).is_some() {
            return Err(tensor_error(origin, &t.name, "appears twice"));
        }
    }
    let mut updates: Vec<(String, Vec<Update>)> = Vec::new();
    for (path, slots) in &plan {
        let mut layer_updates = Vec::new();
        for s in slots {
            let t = by_name.remove(s.name.as_str()).ok_or_else(|| {
                tensor_error(
                    origin,
                    &s.name,
                    format!("missing (the model's {} layout needs it)", layout.as_str()),
                )
            })?;
            let want = s.file_shape();
            if t.shape != want {
                return Err(tensor_error(
                    origin,
                    &s.name,
                    format!("shape {:?}, the model needs {want:?}", t.shape),
                ));
            }
            let values = match (&t.values, s.target) {
                (TensorValues::I64(_), Target::BatchCount) => continue,
                (TensorValues::F32(v), Target::BatchCount) if v.len() == 1 => continue,
                (TensorValues::F32(v), target) if target != Target::BatchCount => v,
                (TensorValues::I64(_), _) => {
                    return Err(tensor_error(origin, &s.name, "dtype int64, expected float32"))
                }
                (TensorValues::F32(_), _) => return Err(tensor_error(origin, &s.name, "expected one int64 value")),
            };
            if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                return Err(tensor_error(
                    origin,
                    &s.name,
                    format!("entry {k} is {} (not finite)", values[k]),
                ));
            }
            let ours = permute(values, &want, &inverse(&s.axes));
            match s.target {
                Target::Mask => {
                    if let Some(k) = ours.iter().zip(&s.values).position(|(a, b)| a != b) {
                        return Err(tensor_error(
                            origin,
                            &s.name,
                            format!(
                                "differs from the model's mask at entry {k} (our layout): {} vs {}; a mask is part of the architecture",
                                ours[k], s.values[k]
                            ),
                        ));
                    }
                }
                Target::Recurrent => {
                    let topology = slots.iter().find(|m| m.target == Target::Mask).map(|m| &m.values);
                    if let Some(k) = topology.and_then(|m| ours.iter().zip(m).position(|(w, &c)| c == 0.0 && *w != 0.0))
                    {
                        let h = s.ours_shape[1];
                        return Err(tensor_error(
                            origin,
                            &s.name,
                            format!("weight {} from neuron {} to neuron {} is not 0 but the topology has no such connection", ours[k], k / h, k % h),
                        ));
                    }
                    layer_updates.push((s.target, s.ours_shape.clone(), ours));
                }
                _ => layer_updates.push((s.target, s.ours_shape.clone(), ours)),
            }
        }
        updates.push((path.clone(), layer_updates));
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(tensor_error(
            origin,
            extra,
            format!("not a tensor of this model in the {} layout", layout.as_str()),
        ));
    }
    // Everything is checked: now write (the remaining errors are internal mismatches of the
    // mapping above, which the tests rule out).
    for (path, layer_updates) in updates {
        let layer = layer_at_mut(model, &path)
            .ok_or_else(|| crate::error::invalid("layer", &path, "vanished from the model"))?;
        apply(layer, layer_updates)?;
    }
    Ok(())
}

fn apply(layer: &mut dyn Module, updates: Vec<Update>) -> Result<()> {
    let mut buffers = Vec::new();
    for (target, shape, values) in updates {
        let param = match target {
            Target::Param(name) => Some(name),
            Target::Recurrent => Some("w_hh"),
            Target::RnnBiasSum => {
                let zeros = vec![0.0; values.len()];
                set_param(layer, "b_hh", &shape, zeros)?;
                Some("b_ih")
            }
            Target::Buffer(name) => {
                buffers.push((name.to_string(), values.clone()));
                None
            }
            Target::FilterKernel | Target::FilterBias => {
                let tensor = Tensor::from_vec(values.clone(), &shape)?;
                let f = layer
                    .as_any_mut()
                    .and_then(|a| a.downcast_mut::<FilterBankLayer>())
                    .ok_or_else(|| crate::error::invalid("layer", "filter bank", "is not one"))?;
                f.set_weights(target == Target::FilterKernel, tensor)?;
                None
            }
            Target::Mask | Target::BatchCount => None,
        };
        if let Some(name) = param {
            set_param(layer, name, &shape, values)?;
        }
    }
    if !buffers.is_empty() {
        layer.set_buffers(&buffers)?;
    }
    Ok(())
}

fn set_param(layer: &mut dyn Module, name: &str, shape: &[usize], values: Vec<f32>) -> Result<()> {
    let lname = layer.name();
    let p = layer
        .params_mut()
        .into_iter()
        .find(|p| param_is(&p.name, name))
        .ok_or_else(|| crate::error::invalid("parameter", name, format!("{lname} has no such parameter")))?;
    let device = p.value.device();
    p.value = Tensor::from_vec(values, shape)?.to_device(device)?;
    Ok(())
}

/// Writes the model's weights to `path` in `format` and `layout`, atomically (a failure leaves
/// no file and an earlier file untouched). A safetensors file's metadata holds
/// `format = "pt"` (so `transformers` accepts it) and `layout`.
///
/// # Errors
/// See [`export_tensors`]; write errors naming the path.
pub fn save_weights(model: &dyn Module, format: WeightFormat, layout: WeightLayout, path: &Path) -> Result<()> {
    let tensors = export_tensors(model, layout)?;
    match format {
        WeightFormat::Safetensors => {
            let bytes = safetensors_bytes(&tensors, layout).map_err(|detail| Error::ParamFile {
                path: path.to_path_buf(),
                detail,
            })?;
            bionpy::write_atomic(path, &bytes)?;
            Ok(())
        }
        WeightFormat::Npz => {
            let arrays: Vec<NamedArray> = tensors
                .into_iter()
                .map(|t| NamedArray {
                    name: t.name,
                    shape: t.shape,
                    data: match t.values {
                        TensorValues::F32(v) => v,
                        // npz entries here are f32; a batch count fits exactly (< 2^24).
                        TensorValues::I64(v) => v.into_iter().map(|x| x as f32).collect(),
                    },
                })
                .collect();
            save_npz(path, &arrays)
        }
    }
}

/// The safetensors encoding of `tensors`.
pub fn safetensors_bytes(tensors: &[ExportTensor], layout: WeightLayout) -> std::result::Result<Vec<u8>, String> {
    let bytes: Vec<&[u8]> = tensors
        .iter()
        .map(|t| match &t.values {
            TensorValues::F32(v) => bytemuck::cast_slice::<f32, u8>(v),
            TensorValues::I64(v) => bytemuck::cast_slice::<i64, u8>(v),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let dtype = match t.values {
                TensorValues::F32(_) => Dtype::F32,
                TensorValues::I64(_) => Dtype::I64,
            };
            TensorView::new(dtype, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format!("{}: {e:?}", t.name))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let metadata: HashMap<String, String> = [
        ("format".to_string(), "pt".to_string()),
        ("layout".to_string(), layout.as_str().to_string()),
    ]
    .into_iter()
    .collect();
    safetensors::serialize(views, &Some(metadata)).map_err(|e| format!("{e:?}"))
}

/// Parses safetensors bytes into tensors (f32 and int64; other dtypes are an error naming the
/// tensor) and the file's `layout` metadata, if any.
///
/// # Errors
/// [`Error::ParamFile`] for a corrupt file, [`Error::WeightFile`] for a tensor of another dtype.
pub fn parse_safetensors(bytes: &[u8], origin: &Path) -> Result<(Vec<ExportTensor>, Option<String>)> {
    let corrupt = |e: safetensors::SafeTensorError| Error::ParamFile {
        path: origin.to_path_buf(),
        detail: format!("not a safetensors file: {e:?}"),
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let layout = metadata.metadata().as_ref().and_then(|m| m.get("layout").cloned());
    let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let mut names: Vec<&String> = st.names();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = st.tensor(name).map_err(corrupt)?;
        let values = match view.dtype() {
            Dtype::F32 => TensorValues::F32(from_le_bytes(view.data())),
            Dtype::I64 => TensorValues::I64(from_le_bytes(view.data())),
            other => return Err(tensor_error(origin, name, format!("dtype {other:?}, expected float32"))),
        };
        out.push(ExportTensor {
            name: name.clone(),
            shape: view.shape().to_vec(),
            values,
        });
    }
    Ok((out, layout))
}

/// Copies little-endian bytes into a vector of `T` (the buffer inside a file need not be aligned
/// for `T`, so it is copied rather than cast in place). A trailing partial element, which the
/// safetensors parser already refuses, is ignored.
fn from_le_bytes<T: bytemuck::Pod + Default>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::default(); bytes.len() / std::mem::size_of::<T>()];
    let n = out.len() * std::mem::size_of::<T>();
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&bytes[..n]);
    out
}

/// Reads a weight file written by [`save_weights`] (or by PyTorch / Keras with the same names)
/// into `model`. All or nothing, see [`import_tensors`]; a safetensors file whose metadata
/// names the other layout is refused.
///
/// # Errors
/// [`Error::ParamFile`] for a missing or corrupt file or a layout mismatch; see
/// [`import_tensors`].
pub fn load_weights(model: &mut dyn Module, format: WeightFormat, layout: WeightLayout, path: &Path) -> Result<()> {
    let tensors = match format {
        WeightFormat::Safetensors => {
            let bytes = std::fs::read(path).map_err(|e| Error::ParamFile {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            let (tensors, file_layout) = parse_safetensors(&bytes, path)?;
            if let Some(l) = file_layout.filter(|l| l != layout.as_str()) {
                return Err(Error::ParamFile {
                    path: path.to_path_buf(),
                    detail: format!("written in the `{l}` layout, `{}` requested", layout.as_str()),
                });
            }
            tensors
        }
        WeightFormat::Npz => load_npz(path)?
            .into_iter()
            .map(|a| ExportTensor {
                name: a.name,
                shape: a.shape,
                values: TensorValues::F32(a.data),
            })
            .collect(),
    };
    import_tensors(model, layout, &tensors, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_and_inverse() {
        // (2, 3) -> (3, 2)
        let d = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(permute(&d, &[2, 3], &[1, 0]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let shape = [2, 3, 4, 5];
        let data: Vec<f32> = (0..120).map(|v| v as f32).collect();
        let axes = [3, 2, 0, 1];
        let p = permute(&data, &shape, &axes);
        // file[o, i, h, w] = ours[h, w, i, o]
        let (o, i, h, w) = (4, 3, 1, 2);
        assert_eq!(p[((o * 4 + i) * 2 + h) * 3 + w], data[((h * 3 + w) * 4 + i) * 5 + o]);
        let file_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        assert_eq!(permute(&p, &file_shape, &inverse(&axes)), data);
    }

    #[test]
    fn keras_names_count_per_class() {
        let mut k = KerasNames::default();
        assert_eq!(k.next("dense"), "dense");
        assert_eq!(k.next("conv2d"), "conv2d");
        assert_eq!(k.next("dense"), "dense_1");
    }
}
