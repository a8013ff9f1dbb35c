//! # biotasks
//!
//! Datasets, working-memory tasks, image perturbations, the training loop, checkpoints and
//! plots: what the experiments of `bioexperiments` are made of. [`data`] loads MNIST (IDX),
//! CIFAR-10 (binary) and image folders with seeded batching and augmentation (flip and shifts, or
//! Keras' `ImageDataGenerator` transform), [`bionet_input`] prepares BioNet's grey, upscaled
//! inputs; [`fit`] trains an image classifier (learning-rate steps; exact resume through
//! [`checkpoint`], the one checkpoint format of every training run); [`early_stopping`]
//! stops a run on a validation plateau (its state is checkpointed too); [`plot`] draws line
//! and box plots; [`perturb`] holds BioNet's ten perturbations; [`fid`] is the Fréchet Inception
//! Distance (TF-FID InceptionV3 features, f64 statistics). The working-memory tasks of *bio_rnn_mem*
//! ("Bio-instantiated recurrent neural networks and working memory"):
//!
//! * [`seq_mem()`] ([`SeqMem`], module [`mod@seq_mem`]): remember `L` numbers, replay them
//!   after a cue (regression);
//! * [`nback_mem()`] ([`NbackMem`], module [`mod@nback_mem`]): does the last number equal the
//!   one `n_back` steps back? (3-class: 0 fixation, 1 non-match, 2 match);
//! * [`pic_latent_mem()`] ([`PicLatentMem`], module [`mod@pic_latent_mem`]): the same with CNN
//!   latent features of MNIST digits from a [`LatentTable`] (the identical image for a match).
//!
//! Every generator returns a [`Trials`]: one row per time step, trials stacked row-wise, cue on
//! column 0, float32 `x (rows, in_dim)` and `y (rows, 1)`, int64 `trial_index (rows,)`; the two
//! n-back tasks return `trials` match trials followed by `trials` non-match trials. The layout is
//! upstream's, value for value.
//!
//! [`assembly`] turns a trial set into upstream's train/validation parts ([`group_shuffle_split`],
//! [`group_shuffle`], [`assemble`], [`create_trials`]), the per-run [`Dataset`] order, and the
//! trimming of zero-target rows before the loss ([`trim_rows`], [`trim_mask`]).
//!
//! ## Randomness
//! Every random choice takes an explicit [`biorng::Stream`]. With `Stream::numpy(seed)`
//! (`seq_mem`, `nback_mem`, split, shuffles) and `Stream::python(seed)` (`pic_latent_mem`) the
//! draws are upstream's, bit for bit, after `np.random.seed(seed)` / `random.seed(seed)`; see
//! [`Rngs`] and [`RngKind`]. The default is the project's seeded ChaCha8 stream.
//!
//! Deliberate differences from upstream are listed in `docs/tasks.md`.
//!
//! ```
//! use biotasks::{create_trials, trim_rows, Rngs, SeqMem, Task};
//!
//! let task = Task::SeqMem(SeqMem { pattern_length: 3, trials: 10, ..SeqMem::default() });
//! let mut rngs = Rngs::upstream(0);
//! let split = create_trials(&task, None, 0.8, &mut rngs)?;
//! assert_eq!(split.train.n_trials(), 8);
//! assert_eq!(split.train.rows(), 8 * 7);
//! assert_eq!(trim_rows(&split.train.y).len(), 8 * 3); // the recall steps
//! # Ok::<(), biotasks::Error>(())
//! ```

pub mod assembly;
pub mod bionet_input;
pub mod checkpoint;
pub mod data;
pub mod early_stopping;
mod error;
pub mod fid;
pub mod fit;
pub mod nback_mem;
pub mod perturb;
pub mod pic_latent_mem;
pub mod plot;
pub mod seq_mem;
pub mod trials;

pub use assembly::{
    assemble, group_shuffle, group_shuffle_split, permutation, split_sizes, trim_mask, trim_rows, Dataset, Rngs, Split,
};
pub use biorng::{RngKind, Stream};
pub use error::{Error, Result};
pub use nback_mem::{nback_mem, NbackMem};
pub use pic_latent_mem::{pic_latent_mem, sample_indices, LatentTable, PicLatentMem};
pub use seq_mem::{seq_mem, SeqMem};
pub use trials::Trials;

/// One of the working-memory tasks with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `seq_mem`.
    SeqMem(SeqMem),
    /// `nback_mem`.
    NbackMem(NbackMem),
    /// `pic_latent_mem` (needs a [`LatentTable`]).
    PicLatentMem(PicLatentMem),
}

impl Task {
    /// Upstream's task name.
    pub fn name(&self) -> &'static str {
        match self {
            Task::SeqMem(_) => "seq_mem",
            Task::NbackMem(_) => "nback_mem",
            Task::PicLatentMem(_) => "pic_latent_mem",
        }
    }

    /// Checks the parameters (ranges, and the trial set's size against [`MAX_TRIAL_VALUES`];
    /// for `pic_latent_mem` what can be checked without the table).
    pub fn validate_params(&self) -> Result<()> {
        match self {
            Task::SeqMem(p) => p.validate(),
            Task::NbackMem(p) => p.validate(),
            Task::PicLatentMem(p) => p.validate_params(),
        }
    }

    /// Generates the full trial set (before any split), drawing from the stream upstream uses for
    /// this task: `rngs.np` for `seq_mem` and `nback_mem`, `rngs.py` for `pic_latent_mem`.
    pub fn generate(&self, table: Option<&LatentTable>, rngs: &mut Rngs) -> Result<Trials> {
        match self {
            Task::SeqMem(p) => p.generate(&mut rngs.np),
            Task::NbackMem(p) => p.generate(&mut rngs.np),
            Task::PicLatentMem(p) => {
                let table = table.ok_or_else(|| Error::InvalidParameter {
                    param: "latents",
                    value: "none".into(),
                    reason: "pic_latent_mem needs a latent table".into(),
                })?;
                p.generate(table, &mut rngs.py)
            }
        }
    }
}

/// Upstream's `create_trials` for one run: generate ([`Task::generate`]), then split and shuffle
/// by trial ([`assemble`], from `rngs.np`).
pub fn create_trials(task: &Task, table: Option<&LatentTable>, train_size: f64, rngs: &mut Rngs) -> Result<Split> {
    let trials = task.generate(table, rngs)?;
    assemble(&trials, train_size, &mut rngs.np)
}
