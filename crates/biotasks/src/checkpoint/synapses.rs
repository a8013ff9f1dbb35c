//! The synaptic-diversity part of a checkpoint (a model converted with `BioConverter`): the
//! `.npz` arrays `bio.<param>.factors` / `bio.<param>.signs` and the `.json` object `bio` (see
//! the [module docs](super)). Restoring validates everything on a copy of the [`BioModel`], so
//! a refused checkpoint changes nothing.

use std::path::Path;

use biolayers::bio::{BioModel, SynapsesCounters};
use biolayers::io::NamedArray;
use biorng::StreamState;
use serde::{Deserialize, Serialize};

use super::{data_err, Checkpointable, ExactF64};
use crate::error::{invalid, Result};

/// The `bio` object of the `.json` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BioMeta {
    /// Training steps taken (the rejuvenation schedule counts them).
    steps: u64,
    /// The exact position of the mechanisms' random stream.
    rng: StreamState,
    /// One entry per converted layer, in model order.
    layers: Vec<LayerMeta>,
}

/// One converted layer's counters in the `.json` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerMeta {
    /// The qualified name of the layer's kernel (as in `param.<name>`).
    param: String,
    activation_count: Vec<ExactF64>,
    activity_initialized: bool,
    weight_adaptive_initialized: bool,
    update_step: u64,
}

/// Prefix of every synaptic-diversity array in the `.npz` file.
const PREFIX: &str = "bio.";

/// The qualified kernel name and the weight shape of each converted layer of `bio`, in model
/// order.
fn kernels<M: Checkpointable + ?Sized>(model: &M, bio: &BioModel) -> Result<Vec<(String, Vec<usize>)>> {
    let params = model.named_params();
    bio.layers
        .iter()
        .map(|cl| {
            let (name, p) = params.get(cl.param).ok_or_else(|| {
                invalid(
                    "bio",
                    cl.param,
                    format!(
                        "parameter index of a converted layer, the model has {} parameters (not the model it was converted from)",
                        params.len()
                    ),
                )
            })?;
            Ok((name.clone(), p.value.shape().to_vec()))
        })
        .collect()
}

/// The arrays and the `bio` object that [`super::save_with_synapses`] writes for `bio`.
pub(super) fn encode<M: Checkpointable + ?Sized>(model: &M, bio: &BioModel) -> Result<(Vec<NamedArray>, BioMeta)> {
    let mut arrays = Vec::new();
    let mut layers = Vec::with_capacity(bio.layers.len());
    for (cl, (name, shape)) in bio.layers.iter().zip(kernels(model, bio)?) {
        let s = &cl.synapses;
        arrays.push(NamedArray {
            name: format!("{PREFIX}{name}.factors"),
            shape,
            data: s.factors().to_vec(),
        });
        if let Some(signs) = s.signs() {
            arrays.push(NamedArray {
                name: format!("{PREFIX}{name}.signs"),
                shape: vec![signs.len()],
                data: signs.to_vec(),
            });
        }
        let c = s.counters();
        layers.push(LayerMeta {
            param: name,
            activation_count: c.activation_count.into_iter().map(ExactF64).collect(),
            activity_initialized: c.activity_initialized,
            weight_adaptive_initialized: c.weight_adaptive_initialized,
            update_step: c.update_step,
        });
    }
    let meta = BioMeta {
        steps: bio.steps(),
        rng: bio.rng_state(),
        layers,
    };
    Ok((arrays, meta))
}

/// For a plain model: refuses a checkpoint that holds synaptic-diversity state (its run needs
/// the converted model to continue).
pub(super) fn refuse(meta: Option<&BioMeta>, arrays: &[NamedArray], npz: &Path, json: &Path) -> Result<()> {
    const HINT: &str = "the model given has no synaptic-diversity state \
                        (resume this run with its BioConverter-converted model)";
    if meta.is_some() {
        return Err(data_err(
            json,
            format!("holds synaptic-diversity state (`bio`) of a converted run; {HINT}"),
        ));
    }
    if let Some(a) = arrays.iter().find(|a| a.name.starts_with(PREFIX)) {
        return Err(data_err(
            npz,
            format!(
                "array {} is synaptic-diversity state of a converted run; {HINT}",
                a.name
            ),
        ));
    }
    Ok(())
}

/// `bio` with the state of the checkpoint (`meta` from `json`, `arrays` from `npz`), validated
/// in full; `bio` itself is not changed.
pub(super) fn decode<M: Checkpointable + ?Sized>(
    model: &M,
    bio: &BioModel,
    meta: Option<BioMeta>,
    arrays: &[NamedArray],
    npz: &Path,
    json: &Path,
) -> Result<BioModel> {
    let meta = meta.ok_or_else(|| {
        data_err(
            json,
            "no synaptic-diversity state (`bio`): written by a run without BioConverter, \
             it cannot continue a converted run",
        )
    })?;
    let kernels = kernels(model, bio)?;
    let names: Vec<&String> = kernels.iter().map(|(n, _)| n).collect();
    let mut restored = bio.clone();
    if meta.layers.len() != kernels.len() {
        return Err(data_err(
            json,
            format!(
                "bio.layers holds {} converted layers, the model has {} ({names:?})",
                meta.layers.len(),
                kernels.len()
            ),
        ));
    }
    for (k, ((cl, (name, shape)), lm)) in restored.layers.iter_mut().zip(&kernels).zip(meta.layers).enumerate() {
        if &lm.param != name {
            return Err(data_err(
                json,
                format!(
                    "bio.layers[{k}].param = {:?}, the model's converted layer {k} is {name:?}",
                    lm.param
                ),
            ));
        }
        let array = |what: &str| {
            let full = format!("{PREFIX}{name}.{what}");
            let found = arrays.iter().find(|a| a.name == full);
            (full, found)
        };
        let (full, factors) = array("factors");
        let factors = factors.ok_or_else(|| data_err(npz, format!("array {full} missing")))?;
        if &factors.shape != shape {
            return Err(data_err(
                npz,
                format!(
                    "array {full} has shape {:?}, the layer's weight {shape:?}",
                    factors.shape
                ),
            ));
        }
        cl.synapses
            .set_factors(&factors.data)
            .map_err(|e| data_err(npz, format!("array {full}: {e}")))?;
        let dale = cl.synapses.config().apply_dales_principle;
        match (array("signs"), dale) {
            ((full, Some(signs)), _) => cl
                .synapses
                .set_signs(&signs.data)
                .map_err(|e| data_err(npz, format!("array {full}: {e}")))?,
            ((full, None), true) => {
                return Err(data_err(
                    npz,
                    format!("array {full} missing (the layer applies Dale's principle)"),
                ))
            }
            ((_, None), false) => {}
        }
        let counters = SynapsesCounters {
            activation_count: lm.activation_count.into_iter().map(|v| v.0).collect(),
            activity_initialized: lm.activity_initialized,
            weight_adaptive_initialized: lm.weight_adaptive_initialized,
            update_step: lm.update_step,
        };
        cl.synapses
            .set_counters(counters)
            .map_err(|e| data_err(json, format!("bio.layers[{k}] ({name}): {e}")))?;
    }
    let expected: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("{PREFIX}{n}.factors"), format!("{PREFIX}{n}.signs")])
        .collect();
    if let Some(a) = arrays
        .iter()
        .find(|a| a.name.starts_with(PREFIX) && !expected.contains(&a.name))
    {
        return Err(data_err(
            npz,
            format!(
                "array {} belongs to no converted layer of this model ({names:?})",
                a.name
            ),
        ));
    }
    restored.set_steps(meta.steps);
    restored
        .set_rng_state(&meta.rng)
        .map_err(|e| data_err(json, format!("bio.rng: {e}")))?;
    Ok(restored)
}
