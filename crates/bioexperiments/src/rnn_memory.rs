//! `reproduce rnn-memory`: bio-instantiated vs randomised recurrent topology on `seq_mem`.
//!
//! The recurrent topology comes from a bundled connectome through `bio2art` (Marmoset, 4
//! neurons per region → 220 neurons). Upstream writes the neuron matrix into PyTorch's
//! `W_hh[to, from]` as `W[to, from]`, i.e. transposed relative to bio2art's row = source; this is
//! reproduced (a connection from `j` to `i` exists where `W[i, j] != 0`). The randomised control
//! permutes the off-diagonal entries of that topology (upstream's directed `random_w`), keeping
//! its density. Elman RNN (relu), zero initial state, linear readout, MSE on the recall steps only
//! (rows with a zero target are trimmed before the loss), PyTorch Adam; trained through the shared
//! RNN pipeline ([`crate::rnn`]), each epoch's loss the mean over trials (batches weighted by
//! their size). The (topology, run) jobs run concurrently, one per rayon thread
//! ([`crate::jobs::run_jobs_concurrent`]): a run of this size does not scale to two threads,
//! and its numbers do not depend on the thread count.
//!
//! # Shapes
//! Batches `(128, T, 2)` with `T = 2·pattern_length + 1` (11 for the default pattern length 5,
//! lr 1e-4 as in upstream's config grid); predictions `(128·T, 1)`.

use bio2art::{random_w, Connectome, Orientation, RecurrentMatrix};
use biolayers::optim::OptimizerConfig;
use biorng::Stream;
use biotasks::{SeqMem, Task};
use serde::Serialize;

use crate::claims::{Better, Claim, Metric};
use crate::common::{prepare_results_folder, toml_of, Overrides, Preset, ReproduceOptions, SettingResult};
use crate::error::Result;
use crate::jobs::{run_jobs_concurrent, JobResult, Plan};
use crate::rnn::loss::NllScaling;
use crate::rnn::{batches, split_datasets, Bio2artSettings, EpochMean, RnnSpec, RnnTraining};

/// Settings of `rnn-memory`.
#[derive(Debug, Clone, Serialize)]
pub struct RnnMemoryConfig {
    /// Bundled connectome.
    pub connectome: String,
    /// Neurons per region.
    pub neurons_per_region: usize,
    /// bio2art `target_sparsity`.
    pub target_sparsity: f64,
    /// bio2art `rand_partition`.
    pub rand_partition: bool,
    /// `seq_mem` pattern length.
    pub pattern_length: usize,
    /// `seq_mem` trials (before the 0.8 / 0.2 split).
    pub trials: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// Runs per topology.
    pub runs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// PyTorch Adam learning rate.
    pub lr: f64,
    /// Base seed.
    pub seed: u64,
}

impl RnnMemoryConfig {
    /// The sizes of `preset`: `quick` 300 epochs × 10 runs per topology (minutes; the former
    /// default); `medium` 500 epochs × 20 runs; `paper` upstream's 500 epochs × 5 iterations
    /// of this combination (seq_mem, pattern length 5, relu, Adam, lr 1e-4).
    pub fn for_preset(preset: Preset, seed: u64) -> Self {
        let (epochs, runs) = match preset {
            Preset::Quick => (300, 10),
            Preset::Medium => (500, 20),
            Preset::Paper => (500, 5),
        };
        RnnMemoryConfig {
            connectome: "Marmoset_Normalized".into(),
            neurons_per_region: 4,
            target_sparsity: 0.8,
            rand_partition: true,
            pattern_length: 5,
            trials: 500,
            epochs,
            runs,
            batch_size: 128,
            lr: 1e-4,
            seed,
        }
    }

    /// `opts`' preset with its overrides applied.
    ///
    /// # Errors
    /// `--train-images`: this task has trials, not images.
    pub fn from_options(opts: &ReproduceOptions) -> Result<Self> {
        let o = opts.overrides;
        if let Some(n) = o.train_images {
            return Err(crate::error::invalid(
                "train_images",
                n,
                "rnn-memory trains on seq_mem trials, not images (the trials are fixed at 500)",
            ));
        }
        let cfg = Self::for_preset(opts.preset, opts.seed);
        Ok(RnnMemoryConfig {
            epochs: Overrides::pick(o.epochs, cfg.epochs),
            runs: Overrides::pick(o.repeats, cfg.runs),
            ..cfg
        })
    }
}

impl RnnMemoryConfig {
    /// The bio2art settings of the topology.
    pub fn bio2art(&self) -> Bio2artSettings {
        Bio2artSettings {
            neurons_per_region: self.neurons_per_region,
            target_sparsity: self.target_sparsity,
            rand_partition: self.rand_partition,
            seed: self.seed,
        }
    }
}

/// The bio2art neuron matrix as the recurrent template, in upstream's orientation (transposed;
/// see `bio2art::topology`).
fn bio_matrix(cfg: &RnnMemoryConfig) -> Result<RecurrentMatrix> {
    let net = cfg.bio2art().network(&Connectome::load(&cfg.connectome)?)?;
    Ok(RecurrentMatrix::from_network(&net, Orientation::Upstream)?)
}

/// Runs the comparison of `opts`' preset and overrides and writes the results folder.
pub fn rnn_memory(opts: &ReproduceOptions) -> Result<Vec<SettingResult>> {
    opts.overrides.validate()?;
    run(opts, &RnnMemoryConfig::from_options(opts)?)
}

/// Runs `cfg` and writes the results folder of `opts`: the jobs of `opts.shard` not yet
/// finished there (a resumed run continues after the last finished (topology, run) job).
pub fn run(opts: &ReproduceOptions, cfg: &RnnMemoryConfig) -> Result<Vec<SettingResult>> {
    let bio_w = bio_matrix(cfg)?;
    let m = bio_w.hidden;
    let density = bio_w.density();
    prepare_results_folder(&opts.out, "rnn-memory", &toml_of(cfg)?, opts.resume)?;
    let task = Task::SeqMem(SeqMem {
        pattern_length: cfg.pattern_length,
        trials: cfg.trials,
        ..SeqMem::default()
    });
    let steps = 2 * cfg.pattern_length + 1;
    let labels = ["bio", "random"];
    let description = format!(
        "{} × {} neurons per region = {m} neurons (bio2art target_sparsity {}, rand_partition {}, no self-connections; topology density {density:.4}); Elman RNN (relu) → linear readout; seq_mem pattern length {}, {} trials (80/20 split); PyTorch Adam lr {}; batch {}; {} epochs; {} run(s) per topology",
        cfg.connectome, cfg.neurons_per_region, cfg.target_sparsity, cfg.rand_partition, cfg.pattern_length, cfg.trials, cfg.lr, cfg.batch_size, cfg.epochs, cfg.runs
    );
    let claim = "the bio-instantiated topology learns the memory task better than its randomised control";
    let plan = Plan {
        name: "rnn-memory".into(),
        description,
        caveat: "Loss = MSE over the recall steps only (zero-target rows trimmed), as upstream. The randomised topology permutes the off-diagonal entries of the bio topology (same density). A regression task: no accuracy.".into(),
        settings: labels.map(String::from).to_vec(),
        repeats: cfg.runs,
        accuracy: false,
        claims: vec![
            Claim::new(claim, "bio", "random", Metric::FinalValLoss, Better::Lower),
            Claim::new(claim, "bio", "random", Metric::MinValLoss, Better::Lower),
        ],
    };
    // One bar per running job: with concurrent jobs (`jobs::run_jobs_concurrent`) several
    // bars are live at once and must share the terminal.
    let bars = indicatif::MultiProgress::new();
    let (results, _) = run_jobs_concurrent(&opts.out, &plan, opts.shard, |job| {
        let label = labels[job.setting];
        let run = job.repeat;
        let seed = cfg.seed + run as u64;
        let (train, val) = split_datasets(&task, None, 0.8, seed)?;
        let in_dim = train.trials().in_dim;
        let train_b = batches(&train, cfg.batch_size, train.len(), false)?;
        let val_b = batches(&val, cfg.batch_size, val.len(), false)?;
        let mut rng = Stream::seeded(seed ^ 0xB10);
        // The random control is `random_w` applied to the oriented matrix (one shuffle of the
        // off-diagonal entries): the same distribution as randomising bio2art's W before
        // orienting it (upstream's order, `bio2art::recurrent_matrix`), and the same draws
        // as the committed results. The model is then drawn from the same stream.
        let template = if label == "bio" {
            bio_w.clone()
        } else {
            RecurrentMatrix {
                hidden: m,
                weights: random_w(&bio_w.weights, m, &mut rng)?,
            }
        };
        let mut model = RnnSpec::default().build(in_dim, 1, &template, &mut rng)?;
        let mut opt = OptimizerConfig::torch_adam(cfg.lr).build()?;
        let mut training = RnnTraining {
            model: &mut model,
            opt: &mut opt,
            steps,
            in_dim,
            classification: false,
            mean: EpochMean::PerTrial,
            nll: NllScaling::AfterSum,
        };
        let bar = opts
            .progress
            .then(|| bars.add(indicatif::ProgressBar::new(cfg.epochs as u64)));
        let mut history = Vec::with_capacity(cfg.epochs);
        for epoch in 1..=cfg.epochs {
            history.push(training.epoch(epoch, &train_b, &val_b)?);
            if let Some(bar) = &bar {
                bar.inc(1);
                bar.set_message(format!(
                    "{label} run {} val loss {:.4}",
                    run + 1,
                    history[epoch - 1].val_loss
                ));
            }
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        Ok(JobResult { density, history })
    })?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bio2art::{convert, Bio2artConfig, NeuronDensity};
    use bioautograd::Tensor;
    use biolayers::layers::Module;

    /// The topologies before `bio2art::topology` existed: the transposed nonzero pattern, and a
    /// shuffle of its off-diagonal flags. The API must give the same ones for the same seeds.
    #[test]
    fn bio_and_random_topologies_are_unchanged() {
        let cfg = RnnMemoryConfig::for_preset(Preset::Quick, 3);
        let connectome = Connectome::load(&cfg.connectome).unwrap();
        let b2a = Bio2artConfig {
            neuron_density: NeuronDensity::Uniform(cfg.neurons_per_region),
            target_sparsity: cfg.target_sparsity,
            rand_partition: cfg.rand_partition,
            keep_diag: false,
            ..Bio2artConfig::default()
        };
        let net = convert(&connectome, &b2a, &mut Stream::seeded(cfg.seed)).unwrap();
        let m = net.n_neurons;
        let mut old = vec![false; m * m];
        for i in 0..m {
            for j in 0..m {
                old[j * m + i] = net.weights[i * m + j] != 0.0;
            }
        }
        let bio = bio_matrix(&cfg).unwrap();
        assert_eq!(bio.topology(), old);
        assert!((bio.density() - 0.4753).abs() < 1e-4, "{}", bio.density());
        let idx: Vec<usize> = (0..m * m).filter(|k| k / m != k % m).collect();
        let mut vals: Vec<bool> = idx.iter().map(|&k| old[k]).collect();
        Stream::seeded(3 ^ 0xB10).shuffle(&mut vals);
        let mut old_random = old.clone();
        for (&k, v) in idx.iter().zip(vals) {
            old_random[k] = v;
        }
        let new_random: Vec<bool> = random_w(&bio.weights, m, &mut Stream::seeded(3 ^ 0xB10))
            .unwrap()
            .iter()
            .map(|&w| w != 0.0)
            .collect();
        assert_eq!(new_random, old_random);
    }

    /// End to end through the layer: region 0 → region 1 in bio2art (W[0, 1] > 0). The input
    /// drives neuron 1 only and the readout sees neuron 0 only, so a signal reaches the output
    /// one step later exactly when neuron 0 receives from neuron 1: upstream's orientation.
    #[test]
    fn orientation_decides_which_neuron_receives() {
        let c = Connectome::from_matrix("tiny", 2, vec![0.0, 0.5, 0.0, 0.0]).unwrap();
        let b2a = Bio2artConfig {
            intrinsic_conn: false,
            ..Bio2artConfig::default()
        };
        let net = convert(&c, &b2a, &mut Stream::seeded(0)).unwrap();
        let response = |orientation: Orientation| -> Vec<f32> {
            let rm = RecurrentMatrix::from_network(&net, orientation).unwrap();
            let w: Vec<f32> = rm.weights.iter().map(|&v| v as f32).collect();
            let mut rnn = biolayers::layers::ElmanRnnConfig::new(1, 2, 1)
                .with_topology(rm.topology())
                .with_recurrent_weights(w)
                .init(&mut Stream::seeded(0))
                .unwrap();
            let values: [Vec<f32>; 6] = [
                vec![0.0, 1.0],
                vec![0.0; 2],
                vec![],
                vec![0.0; 2],
                vec![1.0, 0.0],
                vec![0.0],
            ];
            for (k, p) in rnn.params_mut().into_iter().enumerate() {
                if k != 2 {
                    let shape = p.value.shape().to_vec();
                    p.value = Tensor::from_vec(values[k].clone(), &shape).unwrap();
                }
            }
            let x = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[1, 3, 1]).unwrap();
            biolayers::train::predict(&mut rnn, x).unwrap().to_vec().unwrap()
        };
        assert_eq!(response(Orientation::Upstream), [0.0, 0.5, 0.0]);
        assert_eq!(response(Orientation::SourceRow), [0.0, 0.0, 0.0]);
    }
}
