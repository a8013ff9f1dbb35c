//! Scoring a trained BioNet model on clean and perturbed evaluation images.

use bioautograd::Tensor;
use biolayers::layers::Module;
use biolayers::layers::Sequential;
use biolayers::train::predict;
use biorng::Stream;
use biotasks::data::ImageDataset;
use biotasks::fit::{loss_and_accuracy, EpochRecord};
use biotasks::perturb::{image_seed, network_input, PerturbOptions, Perturbation};

use super::config::Convolution;
use crate::error::Result;

/// Accuracy of one model on one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
}

/// One model's measurements in one trial.
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// Model name.
    pub model: String,
    /// First layer.
    pub convolution: Convolution,
    /// 1-based trial.
    pub trial: usize,
    /// Training history.
    pub history: Vec<EpochRecord>,
    /// `(set, score)` on CIFAR-10G.
    pub generalisation: Vec<(String, Scored)>,
    /// `(perturbation, level index, score)` on the CIFAR-10 test images.
    pub perturbed: Vec<(Perturbation, usize, Scored)>,
    /// `(set, perturbation, level index, score)` on the CIFAR-10G sets (empty when they are not
    /// perturbed).
    pub perturbed_generalisation: Vec<(String, Perturbation, usize, Scored)>,
}

/// Evaluation images in [0, 1] (as [`biotasks::perturb`] takes them) with labels.
pub(crate) struct EvalSet {
    pub(crate) unit: Vec<f32>,
    pub(crate) labels: Vec<usize>,
    pub(crate) size: usize,
}

impl EvalSet {
    /// The first `k` images of every class (in set order).
    pub(crate) fn per_class(&self, k: usize) -> EvalSet {
        let plane = self.size * self.size;
        let mut seen = std::collections::HashMap::new();
        let (mut unit, mut labels) = (Vec::new(), Vec::new());
        for (i, &l) in self.labels.iter().enumerate() {
            let c = seen.entry(l).or_insert(0usize);
            if *c < k {
                *c += 1;
                unit.extend_from_slice(&self.unit[i * plane..(i + 1) * plane]);
                labels.push(l);
            }
        }
        EvalSet {
            unit,
            labels,
            size: self.size,
        }
    }

    pub(crate) fn from_dataset(ds: &ImageDataset) -> Self {
        let rescale = (1.0f64 / 255.0) as f32;
        EvalSet {
            unit: ds.images.iter().map(|&b| f32::from(b) * rescale).collect(),
            labels: ds.labels.clone(),
            size: ds.height,
        }
    }
}

/// The level a perturbation is applied at on `size`-pixel images (see the module docs).
pub fn effective_level(p: Perturbation, level: f64, size: usize) -> f64 {
    match p {
        Perturbation::HighPass | Perturbation::LowPass => level * size as f64 / 224.0,
        _ => level,
    }
}

/// Scores `model` on `set` perturbed by `p` at level index `li` (index 0 of every perturbation
/// is the clean image, except High/Low Pass whose first level already filters).
pub(crate) fn score(
    model: &mut Sequential,
    set: &EvalSet,
    perturbation: Option<(Perturbation, usize)>,
    stats: (f64, f64),
    seed: u64,
) -> Result<Scored> {
    let plane = set.size * set.size;
    let n = set.labels.len();
    let batch = 100;
    let opts = PerturbOptions::with_mean(stats.0);
    let (mut loss, mut correct) = (0.0, 0.0);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let images = &set.unit[start * plane..end * plane];
        let perturbed: Vec<f32> = match perturbation {
            None => images.to_vec(),
            Some((p, li)) => {
                let level = effective_level(p, p.level(li)?, set.size);
                use rayon::prelude::*;
                let parts: Vec<Result<Vec<f32>>> = images
                    .par_chunks_exact(plane)
                    .enumerate()
                    .map(|(i, img)| {
                        let mut rng = Stream::seeded(image_seed(seed, p, li, start + i));
                        Ok(p.apply(img, set.size, set.size, level, &opts, &mut rng)?)
                    })
                    .collect();
                let mut out = Vec::with_capacity(images.len());
                for part in parts {
                    out.extend(part?);
                }
                out
            }
        };
        let x = network_input(&perturbed, stats.0, stats.1);
        // On the model's device (its first parameter's); the logits are read back.
        let device = model
            .params()
            .first()
            .map_or(bioautograd::Device::Cpu, |p| p.value.device());
        let t = Tensor::new(x, &[end - start, 1, set.size, set.size], device).map_err(biolayers::Error::from)?;
        let out = predict(model, t)?.to_vec().map_err(biolayers::Error::from)?;
        let (l, a) = loss_and_accuracy(&out, &set.labels[start..end])?;
        loss += l * (end - start) as f64;
        correct += a * (end - start) as f64;
    }
    Ok(Scored {
        loss: loss / n.max(1) as f64,
        accuracy: correct / n.max(1) as f64,
    })
}
