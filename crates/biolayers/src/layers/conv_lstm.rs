//! `ConvLstm`: a convolutional LSTM (Keras `ConvLSTM2D`, Shi et al. 2015) unrolled over `T`
//! steps of a *static* input, returning the last hidden state.
//!
//! With `∗` a 2-D cross-correlation (the input convolution uses the configured padding, the
//! recurrent one always `same`), σ the logistic function and ⊙ the elementwise product, for
//! `t = 1..T` from `h₀ = c₀ = 0`:
//! ```text
//! i_t = σ(W_i ∗ x + U_i ∗ h_{t-1} + b_i)
//! f_t = σ(W_f ∗ x + U_f ∗ h_{t-1} + b_f)
//! g_t = tanh(W_c ∗ x + U_c ∗ h_{t-1} + b_c)
//! o_t = σ(W_o ∗ x + U_o ∗ h_{t-1} + b_o)
//! c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
//! h_t = o_t ⊙ tanh(c_t)                          output: h_T
//! ```
//! The four gates are stacked along the output channels in Keras' order `[i, f, c, o]`, so the
//! kernels are `W (kh, kw, cin, 4F)`, `U (kh, kw, F, 4F)` and the bias `b (4F)`. The input is the
//! same at every step, so `W ∗ x + b` is computed once. At `T = 1` the recurrent term vanishes
//! (`h₀ = 0`) and the layer is the gated feed-forward map
//! `h = σ(W_o∗x+b_o) ⊙ tanh(σ(W_i∗x+b_i) ⊙ tanh(W_c∗x+b_c))`: what BioNet's dissertation
//! follow-up trained as its "recurrent" layer.
//!
//! Initialisation as Keras: `W` Glorot-uniform, `U` orthogonal (on its `(kh·kw·F, 4F)`
//! matricisation), `b = 0` except `b_f = 1` (`unit_forget_bias`).
//!
//! # Shapes
//! Input `(n, cin, h, w)` → output `(n, F, oh, ow)` (`oh, ow` those of the input convolution).

use bioautograd::{Conv2dOptions, Float, Graph, Padding, Tensor, Var};
use biorng::Stream;
use serde::{Deserialize, Serialize};

use super::{Learnable, Module, PaddingConfig, Param};
use crate::bio::LayerShape;
use crate::error::{invalid, Result};
use crate::init::{FanLayout, Initializer};

fn one_step() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// Configuration of a [`ConvLstm`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvLstmConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Hidden channels `F`.
    pub filters: usize,
    /// `(kh, kw)` of both convolutions.
    pub kernel_size: (usize, usize),
    /// Padding of the input convolution.
    #[serde(default)]
    pub padding: PaddingConfig,
    /// Steps `T` the static input is presented for.
    #[serde(default = "one_step")]
    pub steps: usize,
    /// Keras `unit_forget_bias`: start `b_f` at 1.
    #[serde(default = "yes")]
    pub unit_forget_bias: bool,
}

impl ConvLstmConfig {
    /// A `same`-padded layer unrolled over `steps` steps.
    pub fn new(in_channels: usize, filters: usize, kernel_size: (usize, usize), steps: usize) -> Self {
        ConvLstmConfig {
            in_channels,
            filters,
            kernel_size,
            padding: PaddingConfig::Same,
            steps,
            unit_forget_bias: true,
        }
    }

    /// Draws the kernels from `rng` (Glorot-uniform, then orthogonal).
    ///
    /// # Errors
    /// Zero channels, kernel size or steps.
    pub fn init(&self, rng: &mut Stream) -> Result<ConvLstm> {
        let (kh, kw) = self.kernel_size;
        if self.in_channels == 0 || self.filters == 0 || kh == 0 || kw == 0 {
            return Err(invalid(
                "conv_lstm",
                format!("cin {} filters {} kernel {kh}x{kw}", self.in_channels, self.filters),
                "channels and kernel size must be >= 1",
            ));
        }
        if self.steps == 0 {
            return Err(invalid("steps", 0, "must be >= 1"));
        }
        let f4 = 4 * self.filters;
        let w_shape = [kh, kw, self.in_channels, f4];
        let w = Initializer::GlorotUniform.sample(&w_shape, FanLayout::Keras, rng)?;
        let u_shape = [kh, kw, self.filters, f4];
        let u = orthogonal(kh * kw * self.filters, f4, rng);
        let mut b = vec![0f32; f4];
        if self.unit_forget_bias {
            b[self.filters..2 * self.filters].iter_mut().for_each(|v| *v = 1.0);
        }
        Ok(ConvLstm {
            kernel: Param::new("kernel", Tensor::from_vec(w, &w_shape)?),
            recurrent: Param::new("recurrent_kernel", Tensor::from_vec(u, &u_shape)?),
            bias: Param::new("bias", Tensor::from_vec(b, &[f4])?),
            input_options: Conv2dOptions {
                padding: self.padding.into(),
                ..Conv2dOptions::default()
            },
            filters: self.filters,
            steps: self.steps,
            last_outputs: None,
        })
    }
}

/// A `rows × cols` matrix with orthonormal columns (or rows, when `rows < cols`), row-major:
/// Gram–Schmidt on a standard normal matrix, which gives the `Q` of a QR decomposition with a
/// positive diagonal — Keras' `Orthogonal` (`q · sign(diag r)`).
fn orthogonal(rows: usize, cols: usize, rng: &mut Stream) -> Vec<f32> {
    let (r, c) = if rows < cols { (cols, rows) } else { (rows, cols) };
    // Column-major `r × c`.
    let mut a: Vec<f64> = (0..r * c).map(|_| rng.standard_normal()).collect();
    for j in 0..c {
        for k in 0..j {
            let dot: f64 = (0..r).map(|i| a[j * r + i] * a[k * r + i]).sum();
            for i in 0..r {
                a[j * r + i] -= dot * a[k * r + i];
            }
        }
        let norm = (0..r).map(|i| a[j * r + i].powi(2)).sum::<f64>().sqrt().max(1e-300);
        for i in 0..r {
            a[j * r + i] /= norm;
        }
    }
    let mut out = vec![0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            // `a` is r × c column-major; when transposed, entry (i, j) is a[i][j] of the c × r.
            out[i * cols + j] = if rows < cols { a[i * r + j] } else { a[j * r + i] } as f32;
        }
    }
    out
}

/// The ConvLSTM recurrence of the [module docs](self) on any float type (the layer runs it in
/// `f32`; the gradient test in `f64`). `x (n, cin, h, w)`, `kernel (kh, kw, cin, 4F)`,
/// `recurrent (kh, kw, F, 4F)`, `bias (4F)`; returns `h_T (n, F, oh, ow)`.
///
/// # Errors
/// Shape errors of the convolutions, zero steps.
pub fn conv_lstm_forward<T: Float>(
    g: &Graph<T>,
    x: &Var,
    kernel: &Var,
    recurrent: &Var,
    bias: &Var,
    input_options: &Conv2dOptions,
    steps: usize,
) -> bioautograd::Result<Var> {
    Ok(unroll(g, x, kernel, recurrent, bias, input_options, steps)?.hidden)
}

/// What one unrolled forward records: the output and each kernel's own output (for activity
/// counting).
struct Unrolled {
    /// `h_T (n, F, oh, ow)`.
    hidden: Var,
    /// `W ∗ x + b (n, 4F, oh, ow)`.
    input_term: Var,
    /// `U ∗ h_{T-1} (n, 4F, oh, ow)` of the last step; `None` at `T = 1` (`h₀ = 0`: `U` is unused).
    recurrent_term: Option<Var>,
}

fn unroll<T: Float>(
    g: &Graph<T>,
    x: &Var,
    kernel: &Var,
    recurrent: &Var,
    bias: &Var,
    input_options: &Conv2dOptions,
    steps: usize,
) -> bioautograd::Result<Unrolled> {
    let f4 = g.shape(bias)?.first().copied().unwrap_or(0);
    let f = f4 / 4;
    if steps == 0 || f == 0 || f4 % 4 != 0 {
        return Err(bioautograd::Error::InvalidArgument {
            op: "conv_lstm",
            what: format!("steps = {steps}, bias of {f4} values (must be 4·filters)"),
        });
    }
    let recurrent_options = Conv2dOptions::default().with_padding(Padding::Same);
    let wx = g.conv2d(x, kernel, Some(bias), input_options, None)?;
    let gate = |pre: &Var, k: usize| g.slice(pre, 1, k * f, (k + 1) * f);
    let mut h: Option<Var> = None;
    let mut c: Option<Var> = None;
    let mut recurrent_term = None;
    for _ in 0..steps {
        let pre = match &h {
            Some(h) => {
                let uh = g.conv2d(h, recurrent, None, &recurrent_options, None)?;
                recurrent_term = Some(uh);
                g.add(&wx, &uh)?
            }
            None => wx,
        };
        let i = g.sigmoid(&gate(&pre, 0)?)?;
        let fg = g.sigmoid(&gate(&pre, 1)?)?;
        let cand = g.tanh(&gate(&pre, 2)?)?;
        let o = g.sigmoid(&gate(&pre, 3)?)?;
        let ig = g.mul(&i, &cand)?;
        let next_c = match &c {
            Some(c) => g.add(&g.mul(&fg, c)?, &ig)?,
            None => ig,
        };
        h = Some(g.mul(&o, &g.tanh(&next_c)?)?);
        c = Some(next_c);
    }
    let hidden = h.ok_or(bioautograd::Error::InvalidArgument {
        op: "conv_lstm",
        what: "no steps".into(),
    })?;
    Ok(Unrolled {
        hidden,
        input_term: wx,
        recurrent_term,
    })
}

/// A convolutional LSTM over a static input (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ConvLstm {
    kernel: Param,
    recurrent: Param,
    bias: Param,
    input_options: Conv2dOptions,
    filters: usize,
    steps: usize,
    /// `(W ∗ x + b, U ∗ h_{T-1})` of the last forward, for activity counting.
    last_outputs: Option<(Var, Option<Var>)>,
}

impl ConvLstm {
    /// Hidden channels.
    pub fn filters(&self) -> usize {
        self.filters
    }
    /// Steps `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// The input kernel `W (kh, kw, cin, 4F)`.
    pub fn kernel(&self) -> &Tensor {
        &self.kernel.value
    }
    /// The recurrent kernel `U (kh, kw, F, 4F)`.
    pub fn recurrent_kernel(&self) -> &Tensor {
        &self.recurrent.value
    }
    /// The bias `(4F)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias.value
    }
}

impl Module for ConvLstm {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let w = self.kernel.bind(g);
        let u = self.recurrent.bind(g);
        let b = self.bias.bind(g);
        let run = unroll(g, x, &w, &u, &b, &self.input_options, self.steps)?;
        self.last_outputs = Some((run.input_term, run.recurrent_term));
        Ok(run.hidden)
    }
    fn params(&self) -> Vec<&Param> {
        vec![&self.kernel, &self.recurrent, &self.bias]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.kernel, &mut self.recurrent, &mut self.bias]
    }
    fn name(&self) -> String {
        "conv_lstm".into()
    }
    /// The input kernel `W (kh, kw, cin, 4F)` (parameter 0) and the recurrent kernel
    /// `U (kh, kw, F, 4F)` (parameter 1); their output units are the `4F` gate channels.
    fn learnables(&self) -> Vec<(usize, Learnable)> {
        let conv = |t: &Tensor| match t.shape() {
            &[kh, kw, cin, cout] => Some(LayerShape::Conv { kh, kw, cin, cout }),
            _ => None,
        };
        [(0, &self.kernel), (1, &self.recurrent)]
            .into_iter()
            .filter_map(|(i, p)| conv(&p.value).map(|shape| (i, Learnable { shape, support: None })))
            .collect()
    }
    /// `W ∗ x + b` for the input kernel; `U ∗ h_{T-1}` of the last step for the recurrent
    /// kernel (none at `T = 1`, where `U` takes no part).
    fn weight_output(&self, param: usize) -> Option<Var> {
        match (param, &self.last_outputs) {
            (0, Some((input_term, _))) => Some(*input_term),
            (1, Some((_, recurrent_term))) => *recurrent_term,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_columns_and_rows() {
        let mut rng = Stream::seeded(1);
        for (rows, cols) in [(12, 5), (5, 12), (6, 6)] {
            let m = orthogonal(rows, cols, &mut rng);
            let (outer, inner) = if rows >= cols { (cols, rows) } else { (rows, cols) };
            for a in 0..outer {
                for b in 0..outer {
                    let dot: f64 = (0..inner)
                        .map(|k| {
                            let (x, y) = if rows >= cols {
                                (m[k * cols + a], m[k * cols + b])
                            } else {
                                (m[a * cols + k], m[b * cols + k])
                            };
                            f64::from(x) * f64::from(y)
                        })
                        .sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{rows}x{cols} ({a},{b}) {dot}");
                }
            }
        }
    }
}
