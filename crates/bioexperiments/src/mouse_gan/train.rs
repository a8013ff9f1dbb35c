//! One DCGAN training step with the semantics of upstream's Keras `train_step`
//! (keras.io `dcgan_overriding_train_step`, as `DCGAN_AFHQcat_240805b_git.py` uses it):
//!
//! ```text
//! z₁ ~ N(0, 1)(n, latent);  fake = G(z₁)                                     (no gradient)
//! x = concat(fake, real);   t = concat(1ₙ, 0ₙ) + 0.05·U(0, 1)                (fake = 1, real = 0)
//! d_loss = BCE(D(x), t);    update D
//! z₂ ~ N(0, 1)(n, latent);  g_loss = BCE(D(G(z₂)), 0ₙ);  update G            (D frozen)
//! ```
//! BCE on the discriminator's logit ([`bioautograd::Graph::binary_cross_entropy_with_logits`]).
//! Both networks run in training mode (batch statistics in BN, dropout on, one spectral-norm
//! power iteration per discriminator call). One optimiser holds both networks' slots
//! (generator first, [`Gan::generator_slots`]) and begins one step per GAN step, so each network
//! sees the step counter its own Keras Adam would.
//!
//! Every random draw comes from the caller's stream, in the order above (`z₁`, then the label
//! noise, then `z₂`): a seed fixes the run.

use bioautograd::{Graph, Mode, Tensor};
use biolayers::layers::Module;
use biolayers::optim::Optimizer;
use biorng::Stream;

use super::model::Gan;
use crate::error::{invalid, Result};

/// `n × dim` standard normal draws.
pub fn latent(rng: &mut Stream, n: usize, dim: usize) -> Result<Tensor> {
    let z: Vec<f32> = (0..n * dim).map(|_| rng.standard_normal() as f32).collect();
    Ok(Tensor::from_vec(z, &[n, dim]).map_err(biolayers::Error::from)?)
}

/// The generator's images for `z` with batch statistics in its batch-norm layers (training
/// mode, as during training); the running statistics it updates are those of `generator`.
pub fn generate_batch(generator: &mut dyn Module, z: Tensor) -> Result<Tensor> {
    let g = Graph::with_mode(Mode::Train);
    let x = g.input(z);
    let y = generator.forward(&g, &x)?;
    Ok(g.value(&y).map_err(biolayers::Error::from)?)
}

fn loss_and_grads(
    g: &Graph,
    loss: &bioautograd::Var,
    params: Vec<&biolayers::layers::Param>,
) -> Result<(f32, Vec<Option<Vec<f32>>>)> {
    let value = g
        .value(loss)
        .map_err(biolayers::Error::from)?
        .to_vec()
        .map_err(biolayers::Error::from)?
        .first()
        .copied()
        .unwrap_or(f32::NAN);
    if !value.is_finite() {
        return Err(invalid("gan loss", value, "not finite: the training diverged"));
    }
    let grads = g.backward(loss).map_err(biolayers::Error::from)?;
    Ok((
        value,
        params
            .iter()
            .map(|p| p.var().and_then(|v| grads.slice(&v)).map(<[f32]>::to_vec))
            .collect(),
    ))
}

/// One GAN step on the real images `real (n, 3, s, s)` in [0, 1]. Returns `(d_loss, g_loss)`.
///
/// # Errors
/// Shape errors; a non-finite loss (nothing is updated by the failing half-step).
pub fn gan_step(
    gan: &mut Gan,
    opt: &mut Optimizer,
    real: &Tensor,
    latent_dim: usize,
    rng: &mut Stream,
) -> Result<(f32, f32)> {
    let shape = real.shape().to_vec();
    let n = shape.first().copied().unwrap_or(0);
    if shape.len() != 4 || n == 0 {
        return Err(invalid(
            "real batch",
            format!("{shape:?}"),
            "must be (n, channels, h, w) with n ≥ 1",
        ));
    }
    let fake = generate_batch(&mut gan.generator, latent(rng, n, latent_dim)?)?;
    let mut combined = fake.to_vec().map_err(biolayers::Error::from)?;
    combined.extend(real.to_vec().map_err(biolayers::Error::from)?);
    let mut cshape = shape.clone();
    cshape[0] = 2 * n;
    let labels: Vec<f32> = (0..2 * n)
        .map(|i| if i < n { 1.0 } else { 0.0 } + 0.05 * rng.uniform01() as f32)
        .collect();
    opt.begin_step();
    let slots = gan.generator_slots();

    // Discriminator half-step.
    let (d_loss, grads) = {
        let g = Graph::with_mode(Mode::Train);
        let x = g.input(Tensor::from_vec(combined, &cshape).map_err(biolayers::Error::from)?);
        let logits = gan.discriminator.forward(&g, &x)?;
        let t = g.input(Tensor::from_vec(labels, &[2 * n, 1]).map_err(biolayers::Error::from)?);
        let loss = g
            .binary_cross_entropy_with_logits(&logits, &t)
            .map_err(biolayers::Error::from)?;
        loss_and_grads(&g, &loss, gan.discriminator.params())?
    };
    for (i, (p, grad)) in gan.discriminator.params_mut().into_iter().zip(grads).enumerate() {
        if let Some(grad) = grad {
            opt.update(slots + i, p.value.data_mut().map_err(biolayers::Error::from)?, &grad)?;
        }
    }

    // Generator half-step: the discriminator's parameters enter as constants.
    let z = latent(rng, n, latent_dim)?;
    for p in gan.discriminator.params_mut() {
        p.set_trainable(false);
    }
    let result = (|| {
        let g = Graph::with_mode(Mode::Train);
        let x = g.input(z);
        let logits = gan.forward(&g, &x)?;
        let t = g.input(Tensor::from_vec(vec![0.0; n], &[n, 1]).map_err(biolayers::Error::from)?);
        let loss = g
            .binary_cross_entropy_with_logits(&logits, &t)
            .map_err(biolayers::Error::from)?;
        loss_and_grads(&g, &loss, gan.generator.params())
    })();
    for p in gan.discriminator.params_mut() {
        p.set_trainable(true);
    }
    let (g_loss, grads) = result?;
    for (i, (p, grad)) in gan.generator.params_mut().into_iter().zip(grads).enumerate() {
        if let Some(grad) = grad {
            opt.update(i, p.value.data_mut().map_err(biolayers::Error::from)?, &grad)?;
        }
    }
    Ok((d_loss, g_loss))
}
