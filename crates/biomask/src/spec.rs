//! `MaskSpec`: which mask a layer uses, with the originals' parameter names.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::forms::{diagonal, gaussian, two_d};
use crate::mask::{Layout, Mask, MaskValues};
use crate::matrix::{self, MatrixMask};
use crate::rng::Rng;

fn default_param_reduction() -> f64 {
    0.5
}
fn default_grid_width() -> usize {
    10
}
fn default_window2d_width() -> f64 {
    1.41
}

/// Largest mask, in weights (`nx·ny·kh·kw`), that [`MaskSpec::build`] makes: 2^28, i.e. 1 GiB
/// of `f32` values. It is checked before anything is allocated, so an absurd size from a flag
/// or a config is a typed error rather than an abort; the largest paper layer (VGG16's
/// 3×3×512×512 conv, 2.4 M weights) is far below it.
pub const MAX_MASK_ELEMENTS: usize = 1 << 28;

/// A mask form and its parameters, serialised with a `form` tag, e.g.
/// `{"form": "diagonal", "param_reduction": 0.5}` or
/// `form = "2d"`, `input2d_width = 32`, `output2d_width = 16`, `window2d_width = 0.4` in TOML.
/// Defaults are the originals': `param_reduction = 0.5`, `halfbandwidth = 0` (computed),
/// `input2d_width = output2d_width = 10`, `window2d_width = 1.41` (PyTorch's numeric defaults; the
/// Keras string defaults crash upstream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", deny_unknown_fields)]
pub enum MaskSpec {
    /// All ones (a plain dense or conv layer).
    #[serde(rename = "full")]
    Full,
    /// The schizophrenia-mimicking band. `halfbandwidth != 0` overrides the computed one.
    #[serde(rename = "diagonal")]
    Diagonal {
        #[serde(default = "default_param_reduction")]
        param_reduction: f64,
        #[serde(default)]
        halfbandwidth: f64,
    },
    /// The Gaussian band window (dense layers only).
    #[serde(rename = "gaussian")]
    Gaussian {
        #[serde(default = "default_param_reduction")]
        param_reduction: f64,
        #[serde(default)]
        halfbandwidth: f64,
    },
    /// Independent Bernoulli per weight, kept when `u >= param_reduction` (dense layers).
    #[serde(rename = "random")]
    Random {
        #[serde(default = "default_param_reduction")]
        param_reduction: f64,
    },
    /// Independent Bernoulli per weight *and per spatial tap*, kept when `u >= param_reduction`.
    #[serde(rename = "individual")]
    Individual {
        #[serde(default = "default_param_reduction")]
        param_reduction: f64,
    },
    /// One Bernoulli per channel pair, keeping the whole kh×kw kernel when `u > param_reduction`.
    #[serde(rename = "kernel")]
    Kernel {
        #[serde(default = "default_param_reduction")]
        param_reduction: f64,
    },
    /// The mouse-mimetic two-dimensional window.
    #[serde(rename = "2d")]
    TwoD {
        #[serde(default = "default_grid_width")]
        input2d_width: usize,
        #[serde(default = "default_grid_width")]
        output2d_width: usize,
        #[serde(default = "default_window2d_width")]
        window2d_width: f64,
    },
    /// Any matrix: 0/1 (a topology) or weighted (a float window, dense layers only), from memory
    /// or an `.npy` file (`{"form": "matrix", "path": "topology.npy"}`). See [`MatrixMask`].
    #[serde(rename = "matrix")]
    Matrix(MatrixMask),
}

/// The form names, for command lines and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskForm {
    Full,
    Diagonal,
    Gaussian,
    Random,
    Individual,
    Kernel,
    TwoD,
    Matrix,
}

impl MaskForm {
    /// Every form, in documentation order.
    pub const ALL: [MaskForm; 8] = [
        MaskForm::Full,
        MaskForm::Diagonal,
        MaskForm::Gaussian,
        MaskForm::Random,
        MaskForm::Individual,
        MaskForm::Kernel,
        MaskForm::TwoD,
        MaskForm::Matrix,
    ];

    /// The original's form string.
    pub fn name(self) -> &'static str {
        match self {
            MaskForm::Full => "full",
            MaskForm::Diagonal => "diagonal",
            MaskForm::Gaussian => "gaussian",
            MaskForm::Random => "random",
            MaskForm::Individual => "individual",
            MaskForm::Kernel => "kernel",
            MaskForm::TwoD => "2d",
            MaskForm::Matrix => "matrix",
        }
    }

    /// Whether the form draws random numbers.
    pub fn is_random(self) -> bool {
        matches!(self, MaskForm::Random | MaskForm::Individual | MaskForm::Kernel)
    }
}

impl std::fmt::Display for MaskForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MaskForm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MaskForm::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::UnknownForm(s.to_string()))
    }
}

/// Which kind of layer a mask is for; decides the mask's shape and which forms are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerKind {
    /// A dense/linear layer: mask `(nx, ny)` = `(in_features, out_features)`.
    Dense,
    /// A convolution: mask `(kh, kw, nx, ny)` with `nx = in_channels / groups`, `ny = out_channels`.
    Conv { kernel: (usize, usize) },
    /// A transposed convolution: mask `(kh, kw, nx, ny)` with `nx` = the layer's **output**
    /// channels / groups and `ny` = its input channels, as in both originals. Its mask equals
    /// that of a forward convolution from `nx` to `ny` channels.
    ConvTranspose { kernel: (usize, usize) },
}

impl LayerKind {
    /// `(kh, kw)`; `(1, 1)` for dense layers.
    pub fn kernel_size(self) -> (usize, usize) {
        match self {
            LayerKind::Dense => (1, 1),
            LayerKind::Conv { kernel } | LayerKind::ConvTranspose { kernel } => kernel,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LayerKind::Dense => "dense",
            LayerKind::Conv { .. } => "conv",
            LayerKind::ConvTranspose { .. } => "transposed-conv",
        }
    }
}

fn check_reduction(r: f64) -> Result<()> {
    if !r.is_finite() || !(0.0..=1.0).contains(&r) {
        return Err(invalid("param_reduction", r, "must be a finite number in [0, 1]"));
    }
    Ok(())
}

fn check_halfbandwidth(h: f64) -> Result<()> {
    if !h.is_finite() || h < 0.0 {
        return Err(invalid(
            "halfbandwidth",
            h,
            "must be finite and >= 0 (0 means computed from param_reduction)",
        ));
    }
    Ok(())
}

impl MaskSpec {
    /// The form of this spec.
    pub fn form(&self) -> MaskForm {
        match self {
            MaskSpec::Full => MaskForm::Full,
            MaskSpec::Diagonal { .. } => MaskForm::Diagonal,
            MaskSpec::Gaussian { .. } => MaskForm::Gaussian,
            MaskSpec::Random { .. } => MaskForm::Random,
            MaskSpec::Individual { .. } => MaskForm::Individual,
            MaskSpec::Kernel { .. } => MaskForm::Kernel,
            MaskSpec::TwoD { .. } => MaskForm::TwoD,
            MaskSpec::Matrix(_) => MaskForm::Matrix,
        }
    }

    /// A band mask with the given reduction and computed half-bandwidth.
    pub fn diagonal(param_reduction: f64) -> Self {
        MaskSpec::Diagonal {
            param_reduction,
            halfbandwidth: 0.0,
        }
    }

    /// A mouse-mimetic window with grid widths `a` (inputs) and `b` (outputs) and radius `w`.
    pub fn two_d(input2d_width: usize, output2d_width: usize, window2d_width: f64) -> Self {
        MaskSpec::TwoD {
            input2d_width,
            output2d_width,
            window2d_width,
        }
    }

    /// A dense (or tap-shared conv) mask from `nx × ny` values in C order, `values[x·ny + y]`
    /// (`x` = layer input, `y` = layer output). 0/1 values make a binary mask, others a float
    /// window (see [`MatrixMask`]). A connectome-masked layer:
    /// `DenseConfig::sz(n, n, MaskSpec::matrix(values, n, n)?)`.
    ///
    /// # Errors
    /// Those of [`MatrixMask::from_values`].
    pub fn matrix(values: Vec<f32>, nx: usize, ny: usize) -> Result<Self> {
        MatrixMask::from_values(values, &[nx, ny]).map(MaskSpec::Matrix)
    }

    /// As [`MaskSpec::matrix`] from `f64` values (bio2art's weights).
    ///
    /// # Errors
    /// Those of [`MaskSpec::matrix`], and [`Error::InvalidParameter`] naming a value that `f32`
    /// would round to 0 or infinity.
    pub fn matrix_f64(values: &[f64], nx: usize, ny: usize) -> Result<Self> {
        Self::matrix(matrix::f64_to_f32(values, &[nx, ny])?, nx, ny)
    }

    /// A 0/1 mask from a support, `support[x·ny + y]` (e.g. bio2art's `connected`).
    ///
    /// # Errors
    /// Those of [`MaskSpec::matrix`].
    pub fn binary(support: &[bool], nx: usize, ny: usize) -> Result<Self> {
        Self::matrix(support.iter().map(|&b| f32::from(u8::from(b))).collect(), nx, ny)
    }

    /// A matrix mask of any accepted shape (`[kh, kw, nx, ny]` gives a conv layer one channel
    /// mask per tap).
    ///
    /// # Errors
    /// Those of [`MatrixMask::from_values`].
    pub fn matrix_with_shape(values: Vec<f32>, shape: &[usize]) -> Result<Self> {
        MatrixMask::from_values(values, shape).map(MaskSpec::Matrix)
    }

    /// A matrix mask read from an `.npy` file when the layer is built.
    pub fn matrix_npy(path: impl Into<std::path::PathBuf>) -> Self {
        MaskSpec::Matrix(MatrixMask::npy(path))
    }

    /// Checks the parameters that do not depend on the layer size (a matrix given by a path is
    /// read and checked by [`MaskSpec::build`]).
    pub fn validate(&self) -> Result<()> {
        match *self {
            MaskSpec::Full | MaskSpec::Matrix(_) => Ok(()),
            MaskSpec::Diagonal {
                param_reduction,
                halfbandwidth,
            }
            | MaskSpec::Gaussian {
                param_reduction,
                halfbandwidth,
            } => {
                check_reduction(param_reduction)?;
                check_halfbandwidth(halfbandwidth)
            }
            MaskSpec::Random { param_reduction }
            | MaskSpec::Individual { param_reduction }
            | MaskSpec::Kernel { param_reduction } => check_reduction(param_reduction),
            MaskSpec::TwoD {
                input2d_width,
                output2d_width,
                window2d_width,
            } => {
                if input2d_width == 0 {
                    return Err(invalid("input2d_width", input2d_width, "must be a positive integer"));
                }
                if output2d_width == 0 {
                    return Err(invalid("output2d_width", output2d_width, "must be a positive integer"));
                }
                if !window2d_width.is_finite() || window2d_width <= 0.0 {
                    return Err(invalid("window2d_width", window2d_width, "must be a finite number > 0"));
                }
                Ok(())
            }
        }
    }

    /// The mask of a dense layer with `in_features -> out_features`.
    pub fn dense(&self, in_features: usize, out_features: usize, order: Layout, rng: &mut Rng) -> Result<Mask> {
        self.build(LayerKind::Dense, in_features, out_features, order, rng)
    }

    /// The mask of a convolution `in_channels -> out_channels` with `groups` groups.
    pub fn conv(
        &self,
        in_channels: usize,
        out_channels: usize,
        groups: usize,
        kernel: (usize, usize),
        order: Layout,
        rng: &mut Rng,
    ) -> Result<Mask> {
        let nx = grouped(in_channels, groups, "in_channels")?;
        self.build(LayerKind::Conv { kernel }, nx, out_channels, order, rng)
    }

    /// The mask of a transposed convolution `in_channels -> out_channels`: `nx` is the layer's
    /// output channels / groups and `ny` its input channels.
    pub fn conv_transpose(
        &self,
        in_channels: usize,
        out_channels: usize,
        groups: usize,
        kernel: (usize, usize),
        order: Layout,
        rng: &mut Rng,
    ) -> Result<Mask> {
        let nx = grouped(out_channels, groups, "out_channels")?;
        self.build(LayerKind::ConvTranspose { kernel }, nx, in_channels, order, rng)
    }

    /// Builds the mask in canonical coordinates. `order` is the framework whose array order the
    /// random forms draw in (Keras: `(nx, ny)` / `(kh, kw, nx, ny)`; PyTorch: `(ny, nx)` /
    /// `(ny, nx, kh, kw)`); it does not change the canonical result of the other forms.
    pub fn build(&self, kind: LayerKind, nx: usize, ny: usize, order: Layout, rng: &mut Rng) -> Result<Mask> {
        self.validate()?;
        let (kh, kw) = kind.kernel_size();
        if nx == 0 || ny == 0 || kh == 0 || kw == 0 {
            return Err(Error::InvalidShape(format!(
                "nx={nx}, ny={ny}, kernel=({kh}, {kw}): every size must be >= 1"
            )));
        }
        let elements = [nx, ny, kh, kw]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_MASK_ELEMENTS);
        if elements.is_none() {
            return Err(Error::InvalidShape(format!(
                "nx={nx}, ny={ny}, kernel=({kh}, {kw}): nx·ny·kh·kw exceeds the limit of {MAX_MASK_ELEMENTS} \
                 weights (biomask::MAX_MASK_ELEMENTS)"
            )));
        }
        let conv = kind != LayerKind::Dense;
        let mut halfbandwidth = 0.0;
        let mut gaussian_sum = None;
        let values = match *self {
            MaskSpec::Full => MaskValues::Shared(vec![1.0; nx * ny]),
            MaskSpec::Diagonal {
                param_reduction,
                halfbandwidth: hbw,
            } => {
                let h = if hbw != 0.0 {
                    hbw
                } else {
                    diagonal::half_bandwidth(nx, ny, param_reduction)
                };
                halfbandwidth = h;
                MaskValues::Shared(diagonal::band(nx, ny, h))
            }
            MaskSpec::Gaussian {
                param_reduction,
                halfbandwidth: hbw,
            } => {
                if conv {
                    return Err(Error::UnsupportedForm {
                        form: "gaussian",
                        layer: kind.name(),
                        hint: "upstream silently builds an all-zero mask here; use diagonal or 2d",
                    });
                }
                let h = if hbw != 0.0 {
                    hbw
                } else {
                    1.5 * diagonal::half_bandwidth(nx, ny, param_reduction)
                };
                halfbandwidth = h;
                let (w, gsum) = gaussian::window(nx, ny, h);
                gaussian_sum = Some(gsum);
                MaskValues::Shared(w)
            }
            MaskSpec::Random { param_reduction } => {
                if conv {
                    return Err(Error::UnsupportedForm {
                        form: "random",
                        layer: kind.name(),
                        hint: "upstream silently builds an all-zero mask here; use individual (per tap) or kernel (per channel pair)",
                    });
                }
                MaskValues::Shared(bernoulli_channels(nx, ny, order, rng, |u| u >= param_reduction))
            }
            MaskSpec::Individual { param_reduction } => {
                if conv && kh * kw > 1 {
                    MaskValues::PerTap(bernoulli_taps(nx, ny, kh, kw, order, rng, param_reduction))
                } else {
                    MaskValues::Shared(bernoulli_channels(nx, ny, order, rng, |u| u >= param_reduction))
                }
            }
            MaskSpec::Kernel { param_reduction } => {
                MaskValues::Shared(bernoulli_channels(nx, ny, order, rng, |u| u > param_reduction))
            }
            MaskSpec::TwoD {
                input2d_width,
                output2d_width,
                window2d_width,
            } => {
                if ny > 1 {
                    if input2d_width > nx {
                        return Err(invalid(
                            "input2d_width",
                            input2d_width,
                            format!("must be <= nx = {nx} (upstream divides by zero)"),
                        ));
                    }
                    if output2d_width > ny {
                        return Err(invalid(
                            "output2d_width",
                            output2d_width,
                            format!("must be <= ny = {ny} (upstream silently builds an all-zero, dead layer)"),
                        ));
                    }
                }
                MaskValues::Shared(two_d::window(nx, ny, input2d_width, output2d_width, window2d_width))
            }
            MaskSpec::Matrix(ref m) => {
                let (values, shape) = m.load()?;
                matrix_values(values.into_owned(), &shape, kind, nx, ny)?
            }
        };
        Ok(Mask::new(
            self.clone(),
            kind,
            nx,
            ny,
            values,
            halfbandwidth,
            gaussian_sum,
        ))
    }
}

/// Places a checked matrix of `shape` into a mask of `kind` with `nx × ny` channels.
fn matrix_values(values: Vec<f32>, shape: &[usize], kind: LayerKind, nx: usize, ny: usize) -> Result<MaskValues> {
    let (kh, kw) = kind.kernel_size();
    let weighted = !matrix::is_binary(&values);
    if weighted && kind != LayerKind::Dense {
        return Err(Error::UnsupportedForm {
            form: "matrix",
            layer: kind.name(),
            hint: "a weighted (not 0/1) matrix is a float window, which only dense layers apply; \
                   give a 0/1 matrix",
        });
    }
    if shape == [nx, ny] {
        return Ok(MaskValues::Shared(values));
    }
    if kind != LayerKind::Dense && shape == [kh, kw, nx, ny] {
        return Ok(if kh * kw == 1 {
            MaskValues::Shared(values)
        } else {
            MaskValues::PerTap(values)
        });
    }
    let expected = if kind == LayerKind::Dense {
        format!("[nx, ny] = [{nx}, {ny}]")
    } else {
        format!("[nx, ny] = [{nx}, {ny}] or [kh, kw, nx, ny] = [{kh}, {kw}, {nx}, {ny}]")
    };
    Err(invalid(
        "shape",
        format!("{shape:?}"),
        format!(
            "a matrix mask of this {} layer must be {expected} (x = layer input, y = layer output; \
             transpose a PyTorch (out, in) matrix)",
            kind.name()
        ),
    ))
}

fn grouped(channels: usize, groups: usize, name: &'static str) -> Result<usize> {
    if groups == 0 {
        return Err(invalid("groups", groups, "must be >= 1"));
    }
    if channels % groups != 0 {
        return Err(invalid(
            name,
            channels,
            format!("must be divisible by groups = {groups}"),
        ));
    }
    Ok(channels / groups)
}

/// One draw per channel pair, in the framework's array order.
fn bernoulli_channels(nx: usize, ny: usize, order: Layout, rng: &mut Rng, keep: impl Fn(f64) -> bool) -> Vec<f32> {
    let mut m = vec![0f32; nx * ny];
    let mut set = |x: usize, y: usize, u: f64| m[x * ny + y] = if keep(u) { 1.0 } else { 0.0 };
    match order {
        Layout::Keras => {
            for x in 0..nx {
                for y in 0..ny {
                    set(x, y, rng.uniform01());
                }
            }
        }
        Layout::Torch => {
            for y in 0..ny {
                for x in 0..nx {
                    set(x, y, rng.uniform01());
                }
            }
        }
    }
    m
}

/// One draw per weight and tap, in the framework's kernel order; result in `(kh, kw, nx, ny)`.
fn bernoulli_taps(nx: usize, ny: usize, kh: usize, kw: usize, order: Layout, rng: &mut Rng, r: f64) -> Vec<f32> {
    let mut m = vec![0f32; kh * kw * nx * ny];
    let idx = |i: usize, j: usize, x: usize, y: usize| ((i * kw + j) * nx + x) * ny + y;
    match order {
        Layout::Keras => {
            for i in 0..kh {
                for j in 0..kw {
                    for x in 0..nx {
                        for y in 0..ny {
                            m[idx(i, j, x, y)] = f32::from(u8::from(rng.uniform01() >= r));
                        }
                    }
                }
            }
        }
        Layout::Torch => {
            for y in 0..ny {
                for x in 0..nx {
                    for i in 0..kh {
                        for j in 0..kw {
                            m[idx(i, j, x, y)] = f32::from(u8::from(rng.uniform01() >= r));
                        }
                    }
                }
            }
        }
    }
    m
}
