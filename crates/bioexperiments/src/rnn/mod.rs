//! The one RNN pipeline of `reproduce rnn-memory`, `rnn-run` and `bench-rnn`:
//! topology ([`Bio2artSettings`]) → model ([`RnnSpec`]) → data ([`split_datasets`],
//! [`batches`]) → training loop ([`RnnTraining`]) → trimmed loss ([`loss`]).
//!
//! Elman RNN `h_t = act(x_t·W_ih + b_ih + h_{t-1}·(W_hh ⊙ M) + b_hh)`, `h_{-1} = 0`, linear
//! readout at every step; the topology `M` comes from a bio2art network in upstream's
//! orientation (or its randomisation). Per epoch one pass over the training batches (forward,
//! trimmed loss, backward, optimiser step) and, for the experiments, one over the validation
//! batches (eval mode, no step).
//!
//! The experiments differ only in settings, which are fields here: how an epoch's loss averages
//! its batches ([`EpochMean`]: rnn-memory weights each batch by its trials, rnn-run and
//! bench-rnn take the plain mean of the batch means, as upstream), where the NLL applies its
//! `1/n` ([`loss::NllScaling`]), the task, the init scheme,
//! `remap_w` and `freeze_layer`, and where the streams are seeded from.
//!
//! # Shapes
//! Batches `(B, T, in)` → predictions `(B·T, out)`: `seq_mem` `T = 2L + 1`, in 2, out 1;
//! `nback_mem` `T = TL + 1`, in 2, out 3; `pic_latent_mem` `T = TL + 2`, in `1 + D`, out 3.

pub mod loss;

use bio2art::{convert, remap_w, Bio2artConfig, Bio2artNetwork, Connectome, NeuronDensity, RecurrentMatrix};
use bioautograd::{Graph, Mode, Tensor};
use biolayers::layers::{ElmanRnn, ElmanRnnConfig, Module, RecurrentInit, RnnNonlinearity};
use biolayers::optim::Optimizer;
use biolayers::train::train_step;
use biorng::Stream;
use biotasks::assembly::{Dataset, Rngs};
use biotasks::fit::EpochRecord;
use biotasks::{create_trials, LatentTable, Task};

use crate::error::{invalid, Result};
use loss::{trimmed_accuracy, trimmed_mse, trimmed_nll, NllScaling, CLASSES};

/// The bio2art conversion of every RNN experiment: `neurons_per_region` neurons per region,
/// `target_sparsity`, `rand_partition`, intrinsic connections (bio2art's defaults), no
/// self-connections, drawn from `Stream::seeded(seed)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bio2artSettings {
    /// Neurons per region (upstream's `nr_neurons`).
    pub neurons_per_region: usize,
    /// bio2art `target_sparsity` (upstream: 0.8).
    pub target_sparsity: f64,
    /// bio2art `rand_partition`.
    pub rand_partition: bool,
    /// Seed of the conversion.
    pub seed: u64,
}

impl Bio2artSettings {
    /// The neuron-level network of `connectome`.
    pub fn network(&self, connectome: &Connectome) -> Result<Bio2artNetwork> {
        let b2a = Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(self.neurons_per_region),
            target_sparsity: self.target_sparsity,
            rand_partition: self.rand_partition,
            keep_diag: false,
            ..Bio2artConfig::default()
        };
        Ok(convert(connectome, &b2a, &mut Stream::seeded(self.seed))?)
    }
}

/// The model settings: nonlinearity, init scheme of the recurrent weights, `freeze_layer` and
/// `remap_w` (reorder the initial recurrent values by the rank of the connectome weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnSpec {
    /// `relu` or `tanh`.
    pub nonlinearity: RnnNonlinearity,
    /// Init scheme of `W_hh`.
    pub init: RecurrentInit,
    /// Keep `W_hh` at its initial (masked) value.
    pub freeze_recurrent: bool,
    /// Reorder the initial recurrent values by the rank of the template's weights.
    pub remap_w: bool,
}

impl Default for RnnSpec {
    /// Relu, PyTorch's default init, trainable `W_hh`, no remapping.
    fn default() -> Self {
        RnnSpec {
            nonlinearity: RnnNonlinearity::Relu,
            init: RecurrentInit::Default,
            freeze_recurrent: false,
            remap_w: false,
        }
    }
}

impl RnnSpec {
    /// The model `in_dim → template.hidden → out_dim` on the topology of `template` (the nonzero
    /// weights, `[from·H + to]`), initialised from `rng`. With `remap_w` the stream is used twice
    /// from the same state: a draft's draw gives the values to reorder, and the final model gets
    /// the same other parameters.
    pub fn build(
        &self,
        in_dim: usize,
        out_dim: usize,
        template: &RecurrentMatrix,
        rng: &mut Stream,
    ) -> Result<ElmanRnn> {
        let mut rnn = ElmanRnnConfig::new(in_dim, template.hidden, out_dim)
            .with_nonlinearity(self.nonlinearity)
            .with_init(self.init)
            .with_topology(template.topology())
            .with_freeze_recurrent(self.freeze_recurrent);
        if self.remap_w {
            let draft = rnn.init(&mut rng.clone())?;
            let values = draft.recurrent().to_vec().map_err(biolayers::Error::from)?;
            rnn = rnn.with_recurrent_weights(remap_w(template, &values)?);
        }
        Ok(rnn.init(rng)?)
    }
}

/// Upstream's `create_trials` for one run from `Rngs::seeded(seed)`: generate, split by trial
/// (`train_size`), then the training and the validation [`Dataset`] order, in that order.
pub fn split_datasets(
    task: &Task,
    table: Option<&LatentTable>,
    train_size: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    let mut rngs = Rngs::seeded(seed);
    let split = create_trials(task, table, train_size, &mut rngs)?;
    let train = Dataset::new(split.train, &mut rngs.np);
    let val = Dataset::new(split.validate, &mut rngs.np);
    Ok((train, val))
}

/// One batch: inputs `(size, T, in)`, targets `(size·T,)` and, for classification, the one-hot
/// targets `(size·T, 3)` of the rows with a nonzero class and their count.
#[derive(Debug, Clone)]
pub struct RnnBatch {
    /// Inputs, batch-first.
    pub x: Vec<f32>,
    /// Targets, one per row.
    pub y: Vec<f32>,
    /// Trials in the batch.
    pub size: usize,
    /// One-hot classes (empty for regression).
    pub onehot: Vec<f32>,
    /// Rows with a nonzero class (0 for regression).
    pub count: usize,
}

/// The first `limit` trials of `ds` in batches of `size` (`DataLoader(shuffle=False)`).
pub fn batches(ds: &Dataset, size: usize, limit: usize, classification: bool) -> Result<Vec<RnnBatch>> {
    let size = size.max(1);
    let limit = limit.min(ds.len());
    let mut out = Vec::new();
    for start in (0..limit).step_by(size) {
        let (x, y, b) = ds.batch(start, size.min(limit - start));
        let mut onehot = Vec::new();
        let mut count = 0;
        if classification {
            onehot = vec![0.0f32; y.len() * CLASSES];
            for (r, &v) in y.iter().enumerate() {
                if v != 0.0 {
                    let class = v as usize;
                    if class >= CLASSES || v.fract() != 0.0 {
                        return Err(invalid("y", v, "classes must be 0, 1 or 2"));
                    }
                    onehot[r * CLASSES + class] = 1.0;
                    count += 1;
                }
            }
        }
        out.push(RnnBatch {
            x,
            y,
            size: b,
            onehot,
            count,
        });
    }
    Ok(out)
}

/// How an epoch's loss (and accuracy) averages its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochMean {
    /// `Σ_b loss_b · size_b / Σ_b size_b` (rnn-memory).
    PerTrial,
    /// `Σ_b loss_b / batches`, upstream's (rnn-run, bench-rnn).
    PerBatch,
}

/// Loss and accuracy (%; NaN for regression) of one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassMetrics {
    /// Mean trimmed loss.
    pub loss: f64,
    /// Mean accuracy.
    pub acc: f64,
}

/// The training loop of one run: a model, its optimiser and its batches.
pub struct RnnTraining<'a> {
    /// The model.
    pub model: &'a mut ElmanRnn,
    /// Its optimiser.
    pub opt: &'a mut Optimizer,
    /// Trial length `T`.
    pub steps: usize,
    /// Input width.
    pub in_dim: usize,
    /// NLL + accuracy on 3 classes (else MSE).
    pub classification: bool,
    /// How an epoch averages its batches.
    pub mean: EpochMean,
    /// Where the NLL applies its `−1/n` (classification only).
    pub nll: NllScaling,
}

impl RnnTraining<'_> {
    /// Where the model lives (its first parameter's device): the batches go there.
    fn device(&self) -> bioautograd::Device {
        self.model
            .params()
            .first()
            .map_or(bioautograd::Device::Cpu, |p| p.value.device())
    }

    fn tensor(&self, b: &RnnBatch) -> Result<Tensor> {
        Ok(
            Tensor::new(b.x.clone(), &[b.size, self.steps, self.in_dim], self.device())
                .map_err(biolayers::Error::from)?,
        )
    }

    fn average(&self, sum: (f64, f64), batches: &[RnnBatch]) -> PassMetrics {
        let n = match self.mean {
            EpochMean::PerTrial => batches.iter().map(|b| b.size).sum::<usize>().max(1) as f64,
            EpochMean::PerBatch => batches.len().max(1) as f64,
        };
        PassMetrics {
            loss: sum.0 / n,
            acc: if self.classification { sum.1 / n } else { f64::NAN },
        }
    }

    fn weight(&self, b: &RnnBatch) -> f64 {
        match self.mean {
            EpochMean::PerTrial => b.size as f64,
            EpochMean::PerBatch => 1.0,
        }
    }

    /// One pass over `batches` with an optimiser step after each (train mode).
    ///
    /// # Errors
    /// A non-finite loss is [`biolayers::Error::NonFinite`] inside [`crate::Error::Train`] (the
    /// step changed nothing).
    pub fn train_pass(&mut self, batches: &[RnnBatch]) -> Result<PassMetrics> {
        let (mut loss_sum, mut acc_sum) = (0.0, 0.0);
        for b in batches {
            let x = self.tensor(b)?;
            let (classification, nll) = (self.classification, self.nll);
            let mut acc = f64::NAN;
            let loss = train_step(self.model, self.opt, x, |g, out| {
                if classification {
                    // Read back from a device (a failed read fails the step).
                    acc = trimmed_accuracy(&g.value(out)?.to_vec()?, &b.y);
                    trimmed_nll(g, out, &b.onehot, b.count, nll)
                } else {
                    trimmed_mse(g, out, &b.y)
                }
            })?;
            let w = self.weight(b);
            loss_sum += f64::from(loss) * w;
            acc_sum += acc * w;
        }
        Ok(self.average((loss_sum, acc_sum), batches))
    }

    /// One pass over `batches` in eval mode, no step.
    pub fn validate_pass(&mut self, batches: &[RnnBatch]) -> Result<PassMetrics> {
        let (mut loss_sum, mut acc_sum) = (0.0, 0.0);
        for b in batches {
            let g = Graph::with_mode(Mode::Eval);
            let x = g.input(self.tensor(b)?);
            let out = self.model.forward(&g, &x)?;
            let loss = if self.classification {
                let v = g.value(&out)?;
                acc_sum += trimmed_accuracy(&v.to_vec()?, &b.y) * self.weight(b);
                trimmed_nll(&g, &out, &b.onehot, b.count, self.nll)?
            } else {
                trimmed_mse(&g, &out, &b.y)?
            };
            let v = g.value(&loss)?;
            let first = v.to_vec()?.first().copied().unwrap_or(f32::NAN);
            loss_sum += f64::from(first) * self.weight(b);
        }
        Ok(self.average((loss_sum, acc_sum), batches))
    }

    /// Epoch `epoch`: a training pass over `train`, then a validation pass over `val`.
    pub fn epoch(&mut self, epoch: usize, train: &[RnnBatch], val: &[RnnBatch]) -> Result<EpochRecord> {
        let t = self.train_pass(train)?;
        let v = self.validate_pass(val)?;
        Ok(EpochRecord {
            epoch,
            train_loss: t.loss,
            train_acc: t.acc,
            val_loss: v.loss,
            val_acc: v.acc,
        })
    }
}
