//! The window shapes of the schizophrenia-layer sweeps (`--forms`): the paper's claim is that
//! "the gain appears only with band (diagonal) windows, not random or other shapes", so
//! `schizo-mnist` and `schizo-cifar` can train the same `SzDense` layer with a `diagonal`,
//! `random` or `gaussian` window **at equal density** and compare them.
//!
//! Equal density: the diagonal band at `param_reduction = r` keeps a fraction `d(r)` of the
//! weights (upstream's `1 - reduced_ratio`, e.g. 0.500283 for 2304×512 at r = 0.5). The random
//! window at the same `r` keeps each weight with probability `1 - r` (binomial, ≈ `d(r)`). The
//! Gaussian window `G[x, y] = exp(-(x - rxy·y)² / (2h²))` has upstream's density `ΣG / (nx·ny)`;
//! its half-bandwidth `h` is found by bisection so that this equals `d(r)` (to 1e-9), because
//! upstream's own `h` for a given `r` (the diagonal formula × 1.5) gives another density (on
//! 100×37 at r = 0.3: 0.476 against the band's 0.703), so its windows are not comparable.
//!
//! # Shapes
//! Every form gives a mask of the layer's `(in_features, out_features)`.

use biomask::{Layout, MaskSpec, Rng};

use crate::error::{invalid, Result};

/// One window shape of a band-form sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandForm {
    /// The schizophrenia band (the papers' layer).
    Diagonal,
    /// Independent Bernoulli per weight at the same `param_reduction`.
    Random,
    /// The Gaussian band window, its half-bandwidth fitted to the diagonal's density.
    Gaussian,
}

impl BandForm {
    /// The form's name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BandForm::Diagonal => "diagonal",
            BandForm::Random => "random",
            BandForm::Gaussian => "gaussian",
        }
    }

    /// Parses `--forms` (comma-separated names, no repeats, at least one).
    ///
    /// # Errors
    /// An unknown or repeated name, or an empty list.
    pub fn parse_list(names: &[String]) -> Result<Vec<BandForm>> {
        if names.is_empty() {
            return Err(invalid("forms", "", "give at least one of diagonal, random, gaussian"));
        }
        let mut forms = Vec::with_capacity(names.len());
        for name in names {
            let form = match name.trim() {
                "diagonal" => BandForm::Diagonal,
                "random" => BandForm::Random,
                "gaussian" => BandForm::Gaussian,
                other => {
                    return Err(invalid(
                        "forms",
                        other,
                        "expected diagonal, random or gaussian (the dense-layer window shapes)",
                    ))
                }
            };
            if forms.contains(&form) {
                return Err(invalid("forms", name, "named twice"));
            }
            forms.push(form);
        }
        Ok(forms)
    }

    /// The setting label of this form at `param_reduction = r`: the diagonal keeps the
    /// sweeps' former label `r=<r>` (so earlier results folders stay comparable), the other
    /// forms are `<form> r=<r>`.
    pub fn label(self, r: f64) -> String {
        match self {
            BandForm::Diagonal => format!("r={r}"),
            other => format!("{} r={r}", other.name()),
        }
    }

    /// The mask spec of this form for a `(nx, ny)` dense layer at the density of the diagonal
    /// band at `param_reduction = r`.
    ///
    /// # Errors
    /// `r` outside [0, 1], or a mask that cannot be built.
    pub fn spec(self, r: f64, nx: usize, ny: usize) -> Result<MaskSpec> {
        Ok(match self {
            BandForm::Diagonal => MaskSpec::diagonal(r),
            BandForm::Random => MaskSpec::Random { param_reduction: r },
            BandForm::Gaussian => MaskSpec::Gaussian {
                param_reduction: r,
                halfbandwidth: gaussian_halfbandwidth_for(diagonal_density(r, nx, ny)?, nx, ny)?,
            },
        })
    }
}

/// The density of the diagonal band at `r` on an `(nx, ny)` dense layer.
fn diagonal_density(r: f64, nx: usize, ny: usize) -> Result<f64> {
    let mask = MaskSpec::diagonal(r).dense(nx, ny, Layout::Keras, &mut Rng::numpy(0))?;
    Ok(mask.density())
}

/// The density `ΣG / (nx·ny)` of the Gaussian window of half-bandwidth `h`.
fn gaussian_density(h: f64, nx: usize, ny: usize) -> Result<f64> {
    let spec = MaskSpec::Gaussian {
        param_reduction: 0.5,
        halfbandwidth: h,
    };
    Ok(spec.dense(nx, ny, Layout::Keras, &mut Rng::numpy(0))?.density())
}

/// The half-bandwidth whose Gaussian window has density `target` (bisection; the density
/// grows with `h`, from 0 towards 1).
fn gaussian_halfbandwidth_for(target: f64, nx: usize, ny: usize) -> Result<f64> {
    if !(target > 0.0 && target < 1.0) {
        // A full (r = 0) or empty (r = 1) band: no Gaussian window has that density; the full
        // case is the dense network and the empty one is refused by the sweep.
        return Err(invalid(
            "forms",
            "gaussian",
            format!("no Gaussian window has the diagonal band's density {target}"),
        ));
    }
    let (mut lo, mut hi) = (1e-6_f64, 1.0_f64);
    while gaussian_density(hi, nx, ny)? < target {
        hi *= 2.0;
        if hi > 1e9 {
            return Err(invalid("forms", "gaussian", format!("density {target} not reached")));
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if gaussian_density(mid, nx, ny)? < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if (hi - lo) <= 1e-12 * hi {
            break;
        }
    }
    Ok(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_window_is_fitted_to_the_diagonal_density() {
        let (nx, ny) = (100, 37);
        for r in [0.3, 0.5, 0.8] {
            let target = diagonal_density(r, nx, ny).unwrap();
            let spec = BandForm::Gaussian.spec(r, nx, ny).unwrap();
            let got = spec.dense(nx, ny, Layout::Keras, &mut Rng::numpy(0)).unwrap().density();
            assert!((got - target).abs() < 1e-9, "r {r}: {got} vs {target}");
            // Upstream's own h for this r (the diagonal formula × 1.5) gives another density:
            // the fit matters.
            let upstream = MaskSpec::Gaussian {
                param_reduction: r,
                halfbandwidth: 0.0,
            };
            let up = upstream
                .dense(nx, ny, Layout::Keras, &mut Rng::numpy(0))
                .unwrap()
                .density();
            assert!((up - target).abs() > 0.01, "r {r}: upstream {up} vs {target}");
        }
    }

    #[test]
    fn random_form_keeps_about_one_minus_r() {
        let spec = BandForm::Random.spec(0.5, 200, 100).unwrap();
        let d = spec
            .dense(200, 100, Layout::Keras, &mut Rng::numpy(3))
            .unwrap()
            .density();
        assert!((d - 0.5).abs() < 0.02, "{d}");
    }

    #[test]
    fn lists_are_checked() {
        let names = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            BandForm::parse_list(&names(&["diagonal", "gaussian"])).unwrap(),
            vec![BandForm::Diagonal, BandForm::Gaussian]
        );
        for bad in [&["stripe"][..], &["random", "random"], &[]] {
            let e = BandForm::parse_list(&names(bad)).unwrap_err().to_string();
            assert!(e.contains("forms"), "{e}");
        }
        assert!(BandForm::Gaussian.spec(0.0, 10, 10).is_err());
        assert_eq!(BandForm::Diagonal.label(0.5), "r=0.5");
        assert_eq!(BandForm::Random.label(0.5), "random r=0.5");
    }
}
