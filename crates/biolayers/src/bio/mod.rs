//! Synaptic diversity (Bio Transformations, `pytorch-bio-transformations` 0.0.5): per-weight
//! learning-rate factors, crystallisation, rejuvenation, weight splitting and Dale's principle.
//!
//! This module holds the tape-independent core: [`BioConfig`] (every upstream field, default and
//! validation rule, plus the rules upstream forgot) and [`BioSynapses`], the per-layer state that
//! upstream's `BioModule` keeps, with every operation on a layer's weight and gradient slices.
//! [`BioConverter`] attaches a `BioSynapses` to each convertible weight of any model (dense and
//! conv kernels, masked ones included, and the weights of `ElmanRnn` and `ConvLstm` layers, at any
//! depth of nested containers; what it leaves alone is reported in [`BioModel::skipped`]) and
//! [`BioModel::train_step`] runs the mechanisms around the optimiser step.
//! [`BioModel::synapses_at_mut`] reaches a weight's state, whose factors, signs and
//! counters have validated setters; with the step count and the stream position
//! ([`BioModel::rng_state`]) they are everything a checkpoint needs (`biotasks::checkpoint`).
//!
//! Per-step order (upstream's README): `update_fuzzy_learning_rates` → `volume_dependent_lr` →
//! `fuzzy_learning_rates` (`grad *= p`) → `crystallize` → optimiser step → every N steps
//! `rejuvenate_weights`.
//!
//! # Shapes
//! Weights are in this project's layouts: dense `(in, out)`, conv `(kh, kw, cin/groups, cout)`.
//! Factors `p` have the weight's shape. "Output unit" operations (activity factors, Dale signs
//! of dense layers) act on the last axis.

mod config;
mod converter;
mod splitting;
mod synapses;

pub use config::{BioConfig, Distribution, SplitActivation};
pub use converter::{BioConverter, BioModel, BioSchedule, ConvertedLayer, LastLayer, SkippedWeight};
pub use splitting::{split_group_sum, split_group_sum_backward};
pub use synapses::{gamma_sample, BioSynapses, LayerShape, SynapsesCounters};
