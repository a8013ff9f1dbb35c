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
//!
//! ## The conditional step ([`conditional_gan_step`], `K` classes)
//!
//! The conditioning of the Keras "Conditional GAN" example: the generator reads
//! `[z ‖ onehot(c)]`, the discriminator `[x ‖ onehot(c)·1_{s×s}]` (the class as `K` constant
//! planes after the colour channels, [`discriminator_input`]). The real images carry their own
//! classes `c_real` (from the batch); the fakes' classes are drawn uniformly from the stream:
//!
//! ```text
//! z₁ ~ N(0, 1)(n, latent);  c₁ ~ U{0..K−1}(n);  fake = G([z₁ ‖ onehot(c₁)])
//! x = concat([fake ‖ planes(c₁)], [real ‖ planes(c_real)]);  t as above (label noise)
//! d_loss = BCE(D(x), t);    update D
//! z₂ ~ N(0, 1)(n, latent);  c₂ ~ U{0..K−1}(n)
//! g_loss = BCE(D([G([z₂ ‖ onehot(c₂)]) ‖ planes(c₂)]), 0ₙ);  update G          (D frozen)
//! ```
//! Draw order: `z₁`, `c₁`, the label noise, `z₂`, `c₂` (a class is `Stream::below(K)`). The
//! Keras example reuses the real batch's labels for its fakes; uniform draws keep the fakes'
//! classes independent of the batch (the same in expectation on a class-balanced set, see
//! docs/upstream-differences.md).
//!
//! # Shapes
//! `real (n, 3, s, s)` in [0, 1]; `real_classes (n)` in `0..K`; generator input
//! `(n, latent + K)`; discriminator input `(2n, 3 + K, s, s)` (`K = 0`: unconditional).

use bioautograd::{Device, Graph, Mode, Tensor};
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

/// The loss value (read back) and the gradient of every parameter, wherever it lives.
fn loss_and_grads(
    g: &Graph,
    loss: &bioautograd::Var,
    params: Vec<&biolayers::layers::Param>,
) -> Result<(f32, Vec<Option<Tensor>>)> {
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
            .map(|p| p.var().and_then(|v| grads.get(&v)).cloned())
            .collect(),
    ))
}

/// `data` as a tensor of `shape` on `device`.
fn on(device: Device, data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::new(data, shape, device).map_err(biolayers::Error::from)?)
}

/// `n` classes drawn uniformly from `0..k`.
pub fn random_classes(rng: &mut Stream, n: usize, k: usize) -> Vec<usize> {
    (0..n).map(|_| rng.below(k as u64) as usize).collect()
}

/// The generator's input: each row of `z (n, latent)` followed by the one-hot of its class
/// (`k` values).
///
/// # Errors
/// `classes` not one per row of `z`, a class outside `0..k`.
pub fn one_hot_inputs(z: &Tensor, classes: &[usize], k: usize) -> Result<Tensor> {
    let shape = z.shape().to_vec();
    let (n, dim) = match shape[..] {
        [n, dim] if n == classes.len() => (n, dim),
        _ => {
            return Err(invalid(
                "latent",
                format!("{shape:?}"),
                format!("must be (n, latent) with n = {} classes", classes.len()),
            ))
        }
    };
    check_classes(classes, k)?;
    let zs = z.to_vec().map_err(biolayers::Error::from)?;
    let mut out = Vec::with_capacity(n * (dim + k));
    for (row, &c) in zs.chunks(dim.max(1)).zip(classes) {
        out.extend_from_slice(row);
        out.extend((0..k).map(|j| if j == c { 1.0 } else { 0.0 }));
    }
    Ok(Tensor::from_vec(out, &[n, dim + k]).map_err(biolayers::Error::from)?)
}

/// The `k` class planes of each image, `(n, k, plane)`: plane `j` of image `i` is all ones
/// where `j = classes[i]`, zeros elsewhere (the Keras example's `image_one_hot_labels`,
/// channels-first).
///
/// # Errors
/// A class outside `0..k`.
pub fn class_planes(classes: &[usize], k: usize, plane: usize) -> Result<Vec<f32>> {
    check_classes(classes, k)?;
    let mut out = vec![0.0; classes.len() * k * plane];
    for (i, &c) in classes.iter().enumerate() {
        let at = (i * k + c) * plane;
        out[at..at + plane].fill(1.0);
    }
    Ok(out)
}

/// The discriminator's input on `g`: `images (n, channels, h, w)` and, for a conditional
/// GAN (`Some((classes, k))`, one class per image), each image's [`class_planes`] after its
/// channels, `(n, channels + k, h, w)`, joined where the images are.
///
/// # Errors
/// A class outside `0..k` or a count that is not one per image; tape errors.
pub fn discriminator_input(
    g: &Graph,
    images: &bioautograd::Var,
    cond: Option<(&[usize], usize)>,
) -> Result<bioautograd::Var> {
    let Some((classes, k)) = cond else {
        return Ok(*images);
    };
    let shape = g.shape(images).map_err(biolayers::Error::from)?;
    if shape.len() != 4 || shape[0] != classes.len() {
        return Err(invalid(
            "classes",
            classes.len(),
            format!("need one class per image of {shape:?}"),
        ));
    }
    let device = g.value(images).map_err(biolayers::Error::from)?.device();
    let planes = class_planes(classes, k, shape[2] * shape[3])?;
    let planes = g.input(on(device, planes, &[shape[0], k, shape[2], shape[3]])?);
    Ok(g.concat(&[*images, planes], 1).map_err(biolayers::Error::from)?)
}

fn check_classes(classes: &[usize], k: usize) -> Result<()> {
    match classes.iter().find(|&&c| c >= k) {
        Some(&c) => Err(invalid("class", c, format!("must be below the {k} classes"))),
        None => Ok(()),
    }
}

/// The class conditioning of one step: `K` and the real images' classes.
struct Condition<'a> {
    k: usize,
    real: &'a [usize],
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
    step(gan, opt, real, latent_dim, None, rng)
}

/// One conditional GAN step (see the module docs) on the real images `real (n, 3, s, s)`
/// in [0, 1] of classes `real_classes` (each in `0..num_classes`). Returns `(d_loss, g_loss)`.
///
/// # Errors
/// Shape errors, fewer than 2 classes, a class out of range; a non-finite loss (nothing is
/// updated by the failing half-step).
pub fn conditional_gan_step(
    gan: &mut Gan,
    opt: &mut Optimizer,
    real: &Tensor,
    real_classes: &[usize],
    num_classes: usize,
    latent_dim: usize,
    rng: &mut Stream,
) -> Result<(f32, f32)> {
    if num_classes < 2 {
        return Err(invalid(
            "num_classes",
            num_classes,
            "a conditional GAN needs at least 2 classes",
        ));
    }
    if real.shape().first() != Some(&real_classes.len()) {
        return Err(invalid(
            "real classes",
            real_classes.len(),
            format!("must be one per real image ({:?})", real.shape()),
        ));
    }
    check_classes(real_classes, num_classes)?;
    let cond = Condition {
        k: num_classes,
        real: real_classes,
    };
    step(gan, opt, real, latent_dim, Some(cond), rng)
}

/// The generator's input for `n` fresh latents (and, conditioned, `n` fresh classes), drawn in
/// that order; returns the classes too.
fn draw_inputs(rng: &mut Stream, n: usize, latent_dim: usize, k: Option<usize>) -> Result<(Tensor, Vec<usize>)> {
    let z = latent(rng, n, latent_dim)?;
    match k {
        Some(k) => {
            let classes = random_classes(rng, n, k);
            Ok((one_hot_inputs(&z, &classes, k)?, classes))
        }
        None => Ok((z, Vec::new())),
    }
}

fn step(
    gan: &mut Gan,
    opt: &mut Optimizer,
    real: &Tensor,
    latent_dim: usize,
    cond: Option<Condition<'_>>,
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
    // The GAN trains where the real batch is (the models moved there with `to_device`): the
    // inputs are drawn on the host and uploaded; the fakes join the real images (and their
    // class planes) on the graph, where they are.
    let device = real.device();
    let k = cond.as_ref().map(|c| c.k);
    let (zin, fake_classes) = draw_inputs(rng, n, latent_dim, k)?;
    let fake = generate_batch(
        &mut gan.generator,
        zin.to_device(device).map_err(biolayers::Error::from)?,
    )?;
    // Fakes first, as the images: their drawn classes, then the batch's own.
    let classes: Vec<usize> = match &cond {
        Some(c) => fake_classes.iter().chain(c.real).copied().collect(),
        None => Vec::new(),
    };
    // Checked before the optimiser's step count moves.
    if let Some(c) = &cond {
        check_classes(&classes, c.k)?;
    }
    let labels: Vec<f32> = (0..2 * n)
        .map(|i| if i < n { 1.0 } else { 0.0 } + 0.05 * rng.uniform01() as f32)
        .collect();
    opt.begin_step();
    let slots = gan.generator_slots();

    // Discriminator half-step.
    let (d_loss, grads) = {
        let g = Graph::with_mode(Mode::Train);
        let (fake, real) = (g.input(fake), g.input(real.clone()));
        let images = g.concat(&[fake, real], 0).map_err(biolayers::Error::from)?;
        let x = discriminator_input(&g, &images, cond.as_ref().map(|c| (&classes[..], c.k)))?;
        let logits = gan.discriminator.forward(&g, &x)?;
        let t = g.input(on(device, labels, &[2 * n, 1])?);
        let loss = g
            .binary_cross_entropy_with_logits(&logits, &t)
            .map_err(biolayers::Error::from)?;
        loss_and_grads(&g, &loss, gan.discriminator.params())?
    };
    for (i, (p, grad)) in gan.discriminator.params_mut().into_iter().zip(grads).enumerate() {
        if let Some(grad) = grad {
            opt.update_tensor(slots + i, &mut p.value, &grad)?;
        }
    }

    // Generator half-step: the discriminator's parameters enter as constants.
    let (zin, fake_classes) = draw_inputs(rng, n, latent_dim, k)?;
    for p in gan.discriminator.params_mut() {
        p.set_trainable(false);
    }
    let result = (|| {
        let g = Graph::with_mode(Mode::Train);
        let x = g.input(zin.to_device(device).map_err(biolayers::Error::from)?);
        // The class planes of the fakes are constants beside the generator's output.
        let logits = match &cond {
            Some(c) => {
                let fake = gan.generator.forward(&g, &x)?;
                let xin = discriminator_input(&g, &fake, Some((&fake_classes[..], c.k)))?;
                gan.discriminator.forward(&g, &xin)?
            }
            None => gan.forward(&g, &x)?,
        };
        let t = g.input(on(device, vec![0.0; n], &[n, 1])?);
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
            opt.update_tensor(i, &mut p.value, &grad)?;
        }
    }
    Ok((d_loss, g_loss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_follows_the_latent_and_planes_follow_the_channels() {
        let z = Tensor::from_vec(vec![0.5, -1.0, 2.0, 3.0], &[2, 2]).unwrap();
        let x = one_hot_inputs(&z, &[2, 0], 3).unwrap();
        assert_eq!(x.shape(), &[2, 5]);
        assert_eq!(x.to_vec().unwrap(), [0.5, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 1.0, 0.0, 0.0]);
        // Two 1-channel images of 1×2 pixels, 2 classes: [image, plane 0, plane 1] each.
        let g = Graph::new();
        let images = g.input(Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], &[2, 1, 1, 2]).unwrap());
        let with = discriminator_input(&g, &images, Some((&[1, 0], 2))).unwrap();
        assert_eq!(g.shape(&with).unwrap(), [2, 3, 1, 2]);
        assert_eq!(
            g.value(&with).unwrap().to_vec().unwrap(),
            [0.1, 0.2, 0.0, 0.0, 1.0, 1.0, 0.3, 0.4, 1.0, 1.0, 0.0, 0.0]
        );
        assert!(one_hot_inputs(&z, &[3, 0], 3).is_err());
        assert!(one_hot_inputs(&z, &[0], 3).is_err());
        assert!(discriminator_input(&g, &images, Some((&[0], 2))).is_err());
        assert!(discriminator_input(&g, &images, Some((&[0, 2], 2))).is_err());
    }
}
