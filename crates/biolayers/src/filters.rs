//! Fixed filter banks for a network's first layer (BioNet, Evans et al. 2022): Gabor,
//! Difference of Gaussians (DoG), Low-pass, and the frozen convolution that holds them.
//!
//! Every bank is a set of 2-D kernels `K_c (k × k)` computed in `f64` exactly as upstream's Keras
//! initialisers did (through OpenCV), then cast to `f32`. The layer computes
//! `y_c = ReLU(Σ_{cin} x_cin ⋆ K_c)` (Keras cross-correlation, `same` padding, stride 1, zero
//! bias): each kernel is *tiled* over the input channels, i.e. it filters their sum.
//!
//! ## Gabor (OpenCV `getGaborKernel`)
//! For `h = k div 2` and integer offsets `x, y ∈ [-h, h]`:
//! ```text
//! xr =  x cos θ + y sin θ,   yr = -x sin θ + y cos θ
//! g(x, y) = exp(-xr²/(2σ²) - yr²/(2(σ/γ)²)) · cos(2π xr / λ + ψ)
//! K[row = h - y, col = h - x] = g(x, y)            (OpenCV's index flip)
//! ```
//! The wavelength comes from σ and the bandwidth `b` (octaves):
//! `λ = σ π / c · (2ᵇ - 1)/(2ᵇ + 1)`, `c = √(ln 2 / 2)` ([`gabor_wavelength`]). Channel order
//! (outer to inner): σ → θ → b → γ → ψ. The paper's bank ([`GaborParams::paper`]): k = 63,
//! σ = 8, γ = 0.5, b ∈ {1, 1.8, 2.6} (λ = 14.2305, 23.6422, 30.6025 px), θ ∈ {0, π/4, π/2,
//! 3π/4}, ψ ∈ {π/2, 3π/2}: 24 odd (edge-detecting) kernels, unnormalised.
//!
//! **Orientation and sign convention** (pinned by the tests): with the flip, channel
//! `θ = 0, ψ = π/2` is positive to the *right* of the centre and negative to the left, so it
//! responds (after the ReLU) to a dark-to-bright edge going left to right; its `ψ = 3π/2` twin
//! responds to bright-to-dark. `θ = π/2, ψ = π/2` is positive *below* the centre (dark above,
//! bright below). Rows index the image downwards, columns to the right.
//!
//! ## Gaussians (OpenCV `getGaussianKernel`)
//! `G_s[i] = exp(-(i - (k-1)/2)² / (2 s²)) / Σ_j exp(-(j - (k-1)/2)² / (2 s²))`,
//! `i = 0..k-1`. A 2-D Gaussian is `outer(G_s, G_s)`, renormalised to sum 1.
//! * DoG: for σ → γ: `C = gauss2d(σ)`, `S = gauss2d(σγ)`; channels `[C - S, S - C]` (on, off).
//!   Paper: k = 63, σ ∈ {1, 2, 4, 8}, γ ∈ {1.6, 1.8, 2.0, 2.2} (32 channels).
//! * Low-pass: `gauss2d(σ)`, σ ∈ {1, 2, 4, 8} (4 channels).
//!
//! ## Scaling
//! [`FilterBankSpec::scaled`] multiplies every length (σ, and `k` rounded to the nearest odd
//! number) by a factor, so a bank designed for 224 × 224 input keeps its size relative to the
//! image on a smaller one (factor 1/7 for 32 × 32: k = 9, σ = 8/7). λ follows from σ and `b`.
//!
//! # Shapes
//! A [`FilterBank`] holds `(channels, k, k)`, row-major. [`FilterBankLayer`]: input
//! `(n, cin, h, w)` → output `(n, channels, h, w)` (`same`) or `(n, channels, h-k+1, w-k+1)`
//! (`valid`); its kernel is `(k, k, cin, channels)` (Keras layout, as every conv here).

use bioautograd::{Conv2dOptions, Graph, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::layers::{Module, PaddingConfig, Param};

/// `λ = σ π / c · (2ᵇ − 1)/(2ᵇ + 1)`, `c = √(ln 2 / 2)`: the wavelength of a Gabor with
/// Gaussian scale `sigma` and bandwidth `b` octaves (upstream `calc_lambda`).
pub fn gabor_wavelength(sigma: f64, b: f64) -> f64 {
    let p = 2f64.powf(b);
    let c = (2f64.ln() / 2.0).sqrt();
    sigma * std::f64::consts::PI / c * (p - 1.0) / (p + 1.0)
}

/// The inverse of [`gabor_wavelength`] for σ (upstream `calc_sigma`).
pub fn gabor_sigma(lambda: f64, b: f64) -> f64 {
    let p = 2f64.powf(b);
    let c = (2f64.ln() / 2.0).sqrt();
    lambda * c / std::f64::consts::PI * (p + 1.0) / (p - 1.0)
}

/// The bandwidth in octaves of a Gabor with wavelength `lambda` and scale `sigma`
/// (upstream `calc_bandwidth`): `log2((r + c)/(r − c))`, `r = π σ / λ`.
pub fn gabor_bandwidth(lambda: f64, sigma: f64) -> f64 {
    let r = std::f64::consts::PI * sigma / lambda;
    let c = (2f64.ln() / 2.0).sqrt();
    ((r + c) / (r - c)).log2()
}

/// The largest kernel side a bank may have: 1001² values × 48 Gabor channels is 385 MB of
/// `f64`, already far beyond any first layer (the paper's largest is 63).
pub const MAX_FILTER_KSIZE: usize = 1001;

fn check_ksize(ksize: usize) -> Result<()> {
    if ksize == 0 || ksize % 2 == 0 || ksize > MAX_FILTER_KSIZE {
        return Err(invalid(
            "ksize",
            ksize,
            format!("must be odd, >= 1 and at most the limit {MAX_FILTER_KSIZE}"),
        ));
    }
    Ok(())
}

fn check_positive(name: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(name, v, "must be finite and > 0"));
    }
    Ok(())
}

/// OpenCV `getGaborKernel(Size(k, k), sigma, theta, lambda, gamma, psi, CV_64F)`, row-major
/// `(k, k)`, with OpenCV's index flip (see the [module docs](self)).
///
/// # Errors
/// An even or zero `ksize`, or non-positive σ, λ or γ.
pub fn gabor_kernel(ksize: usize, sigma: f64, theta: f64, lambda: f64, gamma: f64, psi: f64) -> Result<Vec<f64>> {
    check_ksize(ksize)?;
    check_positive("sigma", sigma)?;
    check_positive("lambda", lambda)?;
    check_positive("gamma", gamma)?;
    let h = (ksize / 2) as i64;
    let (sigma_x, sigma_y) = (sigma, sigma / gamma);
    let (c, s) = (theta.cos(), theta.sin());
    // OpenCV's operation order, so values agree to the last bit or two.
    let ex = -0.5 / (sigma_x * sigma_x);
    let ey = -0.5 / (sigma_y * sigma_y);
    let cscale = std::f64::consts::PI * 2.0 / lambda;
    let mut k = vec![0.0; ksize * ksize];
    for y in -h..=h {
        for x in -h..=h {
            let (xf, yf) = (x as f64, y as f64);
            let xr = xf * c + yf * s;
            let yr = -xf * s + yf * c;
            let v = (ex * xr * xr + ey * yr * yr).exp() * (cscale * xr + psi).cos();
            k[((h - y) as usize) * ksize + (h - x) as usize] = v;
        }
    }
    Ok(k)
}

/// OpenCV `getGaussianKernel(k, sigma, CV_64F)` for `sigma > 0`: a sampled Gaussian centred at
/// `(k − 1)/2`, normalised to sum 1.
///
/// # Errors
/// A zero `ksize` or non-positive σ.
pub fn gaussian_kernel_1d(ksize: usize, sigma: f64) -> Result<Vec<f64>> {
    if ksize == 0 {
        return Err(invalid("ksize", ksize, "must be >= 1"));
    }
    check_positive("sigma", sigma)?;
    let scale2x = -0.5 / (sigma * sigma);
    let t: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize - 1) as f64 * 0.5;
            (scale2x * x * x).exp()
        })
        .collect();
    let sum: f64 = t.iter().sum();
    Ok(t.into_iter().map(|v| v / sum).collect())
}

/// `outer(G_s, G_s)` renormalised to sum 1 (upstream's `np.outer(...)` then `/= np.sum`).
fn gaussian_2d(ksize: usize, sigma: f64) -> Result<Vec<f64>> {
    let g = gaussian_kernel_1d(ksize, sigma)?;
    let mut k: Vec<f64> = g.iter().flat_map(|&a| g.iter().map(move |&b| a * b)).collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    Ok(k)
}

fn scale_ksize(ksize: usize, factor: f64) -> usize {
    let k = ((ksize as f64) * factor).round().max(1.0) as usize;
    if k % 2 == 0 {
        k + 1
    } else {
        k
    }
}

/// Parameters of a Gabor bank (upstream `GaborInitializer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaborParams {
    /// Kernel size `k` (odd).
    pub ksize: usize,
    /// Gaussian scales σ (px).
    pub sigmas: Vec<f64>,
    /// Bandwidths `b` (octaves); λ follows from σ and `b`.
    pub bandwidths: Vec<f64>,
    /// Aspect ratios γ (σ_y = σ / γ).
    pub gammas: Vec<f64>,
    /// Orientations θ (rad).
    pub thetas: Vec<f64>,
    /// Phases ψ (rad).
    pub psis: Vec<f64>,
}

impl GaborParams {
    /// The paper's bank (`model.py`): k = 63, σ = 8, b = linspace(1, 2.6, 3), γ = 0.5,
    /// θ = linspace(0, π, 4, endpoint=False), ψ = {π/2, 3π/2}: 24 channels.
    pub fn paper() -> Self {
        use std::f64::consts::PI;
        GaborParams {
            ksize: 63,
            sigmas: vec![8.0],
            bandwidths: vec![1.0, 1.8, 2.6],
            gammas: vec![0.5],
            thetas: (0..4).map(|i| PI * i as f64 / 4.0).collect(),
            psis: vec![PI / 2.0, 3.0 * PI / 2.0],
        }
    }
    /// The Gabor half of `Combined-trim`: the paper's bank at k = 31.
    pub fn trim() -> Self {
        GaborParams {
            ksize: 31,
            ..Self::paper()
        }
    }
    /// Number of kernels.
    pub fn channels(&self) -> usize {
        self.sigmas.len() * self.thetas.len() * self.bandwidths.len() * self.gammas.len() * self.psis.len()
    }
    /// The kernels, channel order σ → θ → b → γ → ψ.
    ///
    /// # Errors
    /// Invalid sizes or parameters (see [`gabor_kernel`]), or an empty parameter list.
    pub fn build(&self) -> Result<FilterBank> {
        check_ksize(self.ksize)?;
        if self.channels() == 0 {
            return Err(invalid(
                "gabor",
                "empty",
                "every parameter list needs at least one value",
            ));
        }
        let mut kernels = Vec::with_capacity(self.channels() * self.ksize * self.ksize);
        for &sigma in &self.sigmas {
            for &theta in &self.thetas {
                for &b in &self.bandwidths {
                    let lambda = gabor_wavelength(sigma, b);
                    for &gamma in &self.gammas {
                        for &psi in &self.psis {
                            kernels.extend(gabor_kernel(self.ksize, sigma, theta, lambda, gamma, psi)?);
                        }
                    }
                }
            }
        }
        FilterBank::new("gabor", self.ksize, kernels)
    }
}

/// Parameters of a Difference-of-Gaussians bank (upstream `DifferenceOfGaussiansInitializer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DogParams {
    /// Kernel size `k` (odd).
    pub ksize: usize,
    /// Centre scales σ (px).
    pub sigmas: Vec<f64>,
    /// Surround / centre ratios γ (> 1).
    pub gammas: Vec<f64>,
}

impl DogParams {
    /// The paper's bank: k = 63, σ ∈ {1, 2, 4, 8}, γ ∈ {1.6, 1.8, 2.0, 2.2}: 32 channels.
    pub fn paper() -> Self {
        DogParams {
            ksize: 63,
            sigmas: vec![1.0, 2.0, 4.0, 8.0],
            gammas: vec![1.6, 1.8, 2.0, 2.2],
        }
    }
    /// The DoG half of `Combined-trim`: the paper's bank at k = 31.
    pub fn trim() -> Self {
        DogParams {
            ksize: 31,
            ..Self::paper()
        }
    }
    /// Number of kernels (on and off per σ, γ).
    pub fn channels(&self) -> usize {
        2 * self.sigmas.len() * self.gammas.len()
    }
    /// The kernels, channel order σ → γ → [on, off].
    ///
    /// # Errors
    /// Invalid sizes, σ ≤ 0, γ ≤ 1, or an empty parameter list.
    pub fn build(&self) -> Result<FilterBank> {
        check_ksize(self.ksize)?;
        if self.channels() == 0 {
            return Err(invalid("dog", "empty", "sigmas and gammas need at least one value"));
        }
        let mut kernels = Vec::with_capacity(self.channels() * self.ksize * self.ksize);
        for &sigma in &self.sigmas {
            for &gamma in &self.gammas {
                if gamma.is_nan() || gamma <= 1.0 {
                    return Err(invalid(
                        "gamma",
                        gamma,
                        "the surround must be wider than the centre (> 1)",
                    ));
                }
                let centre = gaussian_2d(self.ksize, sigma)?;
                let surround = gaussian_2d(self.ksize, sigma * gamma)?;
                kernels.extend(centre.iter().zip(&surround).map(|(c, s)| c - s));
                kernels.extend(centre.iter().zip(&surround).map(|(c, s)| s - c));
            }
        }
        FilterBank::new("dog", self.ksize, kernels)
    }
}

/// Parameters of a Low-pass bank (upstream `LowPassInitializer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowPassParams {
    /// Kernel size `k` (odd).
    pub ksize: usize,
    /// Gaussian scales σ (px).
    pub sigmas: Vec<f64>,
}

impl LowPassParams {
    /// The paper's bank: k = 63, σ ∈ {1, 2, 4, 8}.
    pub fn paper() -> Self {
        LowPassParams {
            ksize: 63,
            sigmas: vec![1.0, 2.0, 4.0, 8.0],
        }
    }
    /// The kernels, one per σ.
    ///
    /// # Errors
    /// Invalid sizes, σ ≤ 0, or no σ.
    pub fn build(&self) -> Result<FilterBank> {
        check_ksize(self.ksize)?;
        if self.sigmas.is_empty() {
            return Err(invalid("sigmas", "[]", "needs at least one value"));
        }
        let mut kernels = Vec::with_capacity(self.sigmas.len() * self.ksize * self.ksize);
        for &sigma in &self.sigmas {
            kernels.extend(gaussian_2d(self.ksize, sigma)?);
        }
        FilterBank::new("low-pass", self.ksize, kernels)
    }
}

/// One of the banks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterBankSpec {
    /// Gabor.
    Gabor(GaborParams),
    /// Difference of Gaussians.
    Dog(DogParams),
    /// Low-pass (Gaussians).
    LowPass(LowPassParams),
}

impl FilterBankSpec {
    /// The kernels.
    ///
    /// # Errors
    /// As the parameter types' `build`.
    pub fn build(&self) -> Result<FilterBank> {
        match self {
            FilterBankSpec::Gabor(p) => p.build(),
            FilterBankSpec::Dog(p) => p.build(),
            FilterBankSpec::LowPass(p) => p.build(),
        }
    }
    /// Number of kernels.
    pub fn channels(&self) -> usize {
        match self {
            FilterBankSpec::Gabor(p) => p.channels(),
            FilterBankSpec::Dog(p) => p.channels(),
            FilterBankSpec::LowPass(p) => p.sigmas.len(),
        }
    }
    /// Kernel size.
    pub fn ksize(&self) -> usize {
        match self {
            FilterBankSpec::Gabor(p) => p.ksize,
            FilterBankSpec::Dog(p) => p.ksize,
            FilterBankSpec::LowPass(p) => p.ksize,
        }
    }
    /// Every length (σ, and `k` to the nearest odd integer) times `factor`; λ scales with σ.
    ///
    /// # Errors
    /// A non-positive or non-finite factor.
    pub fn scaled(&self, factor: f64) -> Result<Self> {
        check_positive("scale", factor)?;
        let scaled_ksize = scale_ksize(self.ksize(), factor);
        if scaled_ksize > MAX_FILTER_KSIZE {
            return Err(invalid(
                "scale",
                factor,
                format!("gives {scaled_ksize}x{scaled_ksize} kernels, beyond the limit {MAX_FILTER_KSIZE}"),
            ));
        }
        let s = |v: &[f64]| v.iter().map(|x| x * factor).collect::<Vec<_>>();
        Ok(match self {
            FilterBankSpec::Gabor(p) => FilterBankSpec::Gabor(GaborParams {
                ksize: scale_ksize(p.ksize, factor),
                sigmas: s(&p.sigmas),
                ..p.clone()
            }),
            FilterBankSpec::Dog(p) => FilterBankSpec::Dog(DogParams {
                ksize: scale_ksize(p.ksize, factor),
                sigmas: s(&p.sigmas),
                ..p.clone()
            }),
            FilterBankSpec::LowPass(p) => FilterBankSpec::LowPass(LowPassParams {
                ksize: scale_ksize(p.ksize, factor),
                sigmas: s(&p.sigmas),
            }),
        })
    }
}

/// A built bank: `channels` kernels of `ksize × ksize`, `f64`, row-major `(channels, k, k)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterBank {
    /// `gabor`, `dog` or `low-pass`.
    pub name: String,
    /// Kernel size.
    pub ksize: usize,
    /// Number of kernels.
    pub channels: usize,
    /// `(channels, k, k)` values.
    pub kernels: Vec<f64>,
}

impl FilterBank {
    /// A bank from `(channels, k, k)` values.
    ///
    /// # Errors
    /// A length that is not a positive multiple of `k²`.
    pub fn new(name: &str, ksize: usize, kernels: Vec<f64>) -> Result<Self> {
        let plane = ksize * ksize;
        if plane == 0 || kernels.is_empty() || kernels.len() % plane != 0 {
            return Err(invalid(
                "kernels",
                kernels.len(),
                format!("must be a positive multiple of k² = {plane}"),
            ));
        }
        Ok(FilterBank {
            name: name.to_string(),
            ksize,
            channels: kernels.len() / plane,
            kernels,
        })
    }
    /// Kernel `c`, row-major `(k, k)`.
    pub fn kernel(&self, c: usize) -> Option<&[f64]> {
        let plane = self.ksize * self.ksize;
        self.kernels.get(c * plane..(c + 1) * plane)
    }
    /// The `f32` conv kernel `(k, k, in_channels, channels)` with every 2-D kernel tiled over
    /// the input channels (upstream's `K.tile`).
    ///
    /// # Errors
    /// Zero input channels.
    pub fn keras_kernel(&self, in_channels: usize) -> Result<Tensor> {
        if in_channels == 0 {
            return Err(invalid("in_channels", 0, "must be >= 1"));
        }
        let (k, c) = (self.ksize, self.channels);
        let mut w = vec![0f32; k * k * in_channels * c];
        for ch in 0..c {
            for r in 0..k {
                for col in 0..k {
                    let v = self.kernels[(ch * k + r) * k + col] as f32;
                    for i in 0..in_channels {
                        w[((r * k + col) * in_channels + i) * c + ch] = v;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(w, &[k, k, in_channels, c])?)
    }
    /// The values as `f32` `(channels, k, k)` (what a Keras layer held), e.g. for `.npy` export.
    pub fn to_f32(&self) -> Vec<f32> {
        self.kernels.iter().map(|&v| v as f32).collect()
    }
}

fn same() -> PaddingConfig {
    PaddingConfig::Same
}

/// Configuration of a filter-bank layer: upstream's `Conv2D(n, k, padding='same',
/// activation='relu', use_bias=True, trainable=False)` with the bank as kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBankConfig {
    /// The bank.
    pub bank: FilterBankSpec,
    /// Input channels (each kernel is tiled over them).
    pub in_channels: usize,
    /// `same` (upstream's bio layers) or `valid` (the ResNet stem).
    #[serde(default = "same")]
    pub padding: PaddingConfig,
    /// Learn the kernel and bias (upstream's accidental behaviour in the retinal-bottleneck
    /// models, reproduced only on request). Default: frozen.
    #[serde(default)]
    pub trainable: bool,
}

impl FilterBankConfig {
    /// A frozen, `same`-padded layer for `bank` on `in_channels` channels.
    pub fn new(bank: FilterBankSpec, in_channels: usize) -> Self {
        FilterBankConfig {
            bank,
            in_channels,
            padding: PaddingConfig::Same,
            trainable: false,
        }
    }
    /// Builds the kernels.
    ///
    /// # Errors
    /// Invalid bank parameters or zero input channels.
    pub fn init(&self) -> Result<FilterBankLayer> {
        let bank = self.bank.build()?;
        let kernel = bank.keras_kernel(self.in_channels)?;
        let bias = Tensor::from_vec(vec![0.0; bank.channels], &[bank.channels])?;
        let options = Conv2dOptions {
            padding: self.padding.into(),
            ..Conv2dOptions::default()
        };
        Ok(FilterBankLayer {
            name: bank.name.clone(),
            kernel: Param::new("kernel", kernel),
            bias: Param::new("bias", bias),
            options,
            trainable: self.trainable,
            bank,
        })
    }
}

/// `ReLU(x ⋆ K + b)` with a fixed bank `K` and a zero bias; frozen unless configured
/// otherwise. A frozen layer has no parameters ([`Module::params`] is empty), binds its kernel as
/// a constant (no weight gradient is computed) and is invisible to converters.
#[derive(Debug, Clone)]
pub struct FilterBankLayer {
    name: String,
    kernel: Param,
    bias: Param,
    options: Conv2dOptions,
    trainable: bool,
    bank: FilterBank,
}

impl FilterBankLayer {
    /// The bank it was built from.
    pub fn bank(&self) -> &FilterBank {
        &self.bank
    }
    /// The current kernel `(k, k, cin, channels)`.
    pub fn kernel(&self) -> &Tensor {
        &self.kernel.value
    }
    /// The current bias.
    pub fn bias(&self) -> &Tensor {
        &self.bias.value
    }
    /// Whether the kernel and bias are learned.
    pub fn trainable(&self) -> bool {
        self.trainable
    }
    /// Replaces the kernel (`kernel = true`) or the bias by `value` of the same shape (weight
    /// import, [`crate::interop`]).
    ///
    /// # Errors
    /// A shape other than the current one.
    pub(crate) fn set_weights(&mut self, kernel: bool, value: Tensor) -> Result<()> {
        let slot = if kernel { &mut self.kernel } else { &mut self.bias };
        if value.shape() != slot.value.shape() {
            return Err(Error::ShapeMismatch {
                op: "filter bank import",
                lhs_name: "new",
                lhs: value.shape().to_vec(),
                rhs_name: "current",
                rhs: slot.value.shape().to_vec(),
            });
        }
        slot.value = value.to_device(slot.value.device())?;
        Ok(())
    }
}

impl Module for FilterBankLayer {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
    fn forward(&mut self, g: &Graph, x: &Var) -> Result<Var> {
        let y = if self.trainable {
            let w = self.kernel.bind(g);
            let b = self.bias.bind(g);
            g.conv2d(x, &w, Some(&b), &self.options, None)?
        } else {
            // Constant leaves: the tape computes no gradient for them. The bias is zero unless
            // imported ([`crate::interop`]), and adding zero changes nothing.
            let w = g.input(self.kernel.value.clone());
            let b = g.input(self.bias.value.clone());
            g.conv2d(x, &w, Some(&b), &self.options, None)?
        };
        Ok(g.relu(&y)?)
    }
    fn params(&self) -> Vec<&Param> {
        if self.trainable {
            vec![&self.kernel, &self.bias]
        } else {
            Vec::new()
        }
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        if self.trainable {
            vec![&mut self.kernel, &mut self.bias]
        } else {
            Vec::new()
        }
    }
    fn name(&self) -> String {
        format!("{}_conv", self.name.replace('-', "_"))
    }
    /// The kernel and bias move too when frozen (they are constants of the tape, not
    /// parameters, so the default, which moves `params_mut`, would leave them behind).
    fn to_device(&mut self, device: bioautograd::Device) -> Result<()> {
        self.kernel.value = self.kernel.value.to_device(device)?;
        self.bias.value = self.bias.value.to_device(device)?;
        Ok(())
    }
}
