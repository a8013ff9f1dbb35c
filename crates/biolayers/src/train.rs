//! One optimisation step on the tape, and parameter files for a whole model.

use std::path::Path;

use bioautograd::{Graph, Mode, Tensor, Var};

use crate::error::{Error, Result};
use crate::io::{load_npz, save_npz, NamedArray};
use crate::layers::{Module, Sequential};
use crate::optim::Optimizer;

/// Runs `loss_fn(graph, model(x))`, back-propagates, and updates every parameter with `opt`.
/// Returns the loss. A non-finite loss is an error and leaves the parameters unchanged.
pub fn train_step(
    model: &mut dyn Module,
    opt: &mut Optimizer,
    x: Tensor,
    loss_fn: impl FnOnce(&Graph, &Var) -> bioautograd::Result<Var>,
) -> Result<f32> {
    train_step_with(model, opt, x, loss_fn, &[], |_, _, _| Ok(()), |_| Ok(()))
}

/// [`train_step`] with two hooks: `before_update(graph, model, grads)` may rewrite the
/// gradients (one entry per parameter, in [`Module::params`] order) before the optimiser runs,
/// and `after_update(model)` runs after it (e.g. synaptic-diversity mechanisms).
///
/// A model moved to a CUDA device ([`Module::to_device`]; `x` on the same device) trains
/// there: forward, backward and the optimiser step run on the device, and only the loss is
/// read back. Its gradients stay on the device, except those of the parameters listed in
/// `host_grads` (indices into [`Module::params`]): they are read back for `before_update`, and
/// what it leaves in them is uploaded for the optimiser step. `before_update` sees `None` for
/// the other device gradients. On the host every gradient is a host vector and `host_grads`
/// changes nothing.
pub fn train_step_with<M: Module + ?Sized>(
    model: &mut M,
    opt: &mut Optimizer,
    x: Tensor,
    loss_fn: impl FnOnce(&Graph, &Var) -> bioautograd::Result<Var>,
    host_grads: &[usize],
    before_update: impl FnOnce(&Graph, &M, &mut [Option<Vec<f32>>]) -> Result<()>,
    after_update: impl FnOnce(&mut M) -> Result<()>,
) -> Result<f32> {
    let (loss, grads) = {
        let g = Graph::with_mode(Mode::Train);
        let xv = g.input(x);
        let y = model.forward(&g, &xv)?;
        let loss = loss_fn(&g, &y)?;
        let value = g.value(&loss)?.to_vec()?.first().copied().unwrap_or(f32::NAN);
        if !value.is_finite() {
            return Err(Error::NonFinite {
                op: "train_step",
                what: format!("loss = {value}"),
            });
        }
        let grads = g.backward(&loss)?;
        let mut per_param: Vec<Option<Vec<f32>>> = model
            .params()
            .iter()
            .map(|p| p.var().and_then(|v| grads.slice(&v)).map(<[f32]>::to_vec))
            .collect();
        // Gradients on a CUDA device stay there (the hook does not see them), but for the
        // parameters the hook asked for, which are read back.
        let mut device_grads: Vec<Option<Tensor>> = model
            .params()
            .iter()
            .map(|p| p.var().and_then(|v| grads.get(&v)).filter(|t| t.is_cuda()).cloned())
            .collect();
        for &i in host_grads {
            if let Some(t) = device_grads.get_mut(i).and_then(Option::take) {
                per_param[i] = Some(t.to_vec()?);
            }
        }
        before_update(&g, model, &mut per_param)?;
        (value, per_param.into_iter().zip(device_grads).collect::<Vec<_>>())
    };
    opt.begin_step();
    for (i, (p, (g, dg))) in model.params_mut().into_iter().zip(grads).enumerate() {
        // A frozen parameter is bound as an input and has no gradient; the check also covers a
        // hook that would hand it one.
        if !p.is_trainable() {
            continue;
        }
        if let Some(dg) = dg {
            opt.update_tensor(i, &mut p.value, &dg)?;
        } else if let Some(g) = g {
            if p.value.is_cuda() {
                // A gradient the hook read back (and may have rewritten) goes up again.
                let up = Tensor::new(g, p.value.shape(), p.value.device())?;
                opt.update_tensor(i, &mut p.value, &up)?;
            } else {
                opt.update(i, p.value.data_mut()?, &g)?;
            }
        }
    }
    after_update(model)?;
    Ok(loss)
}

/// Runs the model in eval mode and returns its output.
pub fn predict(model: &mut dyn Module, x: Tensor) -> Result<Tensor> {
    let g = Graph::with_mode(Mode::Eval);
    let xv = g.input(x);
    let y = model.forward(&g, &xv)?;
    Ok(g.value(&y)?)
}

/// Saves every parameter as `<index>.<layer>.<param>` in an `.npz` (atomically).
pub fn save_params(model: &Sequential, path: &Path) -> Result<()> {
    let arrays = model
        .named_params()
        .into_iter()
        .map(|(name, p)| {
            Ok(NamedArray {
                name,
                shape: p.value.shape().to_vec(),
                data: p.value.to_vec()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    save_npz(path, &arrays)
}

/// Loads parameters saved by [`save_params`] into a model of the same architecture. Names and
/// shapes must match exactly; nothing is changed on a mismatch.
pub fn load_params(model: &mut Sequential, path: &Path) -> Result<()> {
    let arrays = load_npz(path)?;
    let names: Vec<(String, Vec<usize>)> = model
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value.shape().to_vec()))
        .collect();
    if arrays.len() != names.len() {
        return Err(Error::ParamFile {
            path: path.to_path_buf(),
            detail: format!(
                "{} arrays in the file, the model has {} parameters",
                arrays.len(),
                names.len()
            ),
        });
    }
    for (a, (n, s)) in arrays.iter().zip(&names) {
        if &a.name != n || &a.shape != s {
            return Err(Error::ParamFile {
                path: path.to_path_buf(),
                detail: format!("entry `{}` {:?} does not match parameter `{n}` {s:?}", a.name, a.shape),
            });
        }
    }
    for (p, a) in model.params_mut().into_iter().zip(arrays) {
        p.value = Tensor::from_vec(a.data, &a.shape)?;
    }
    Ok(())
}
