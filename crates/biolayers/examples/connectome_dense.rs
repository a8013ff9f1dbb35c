//! A feed-forward layer masked by a bio2art connectome: trains it on a toy task and shows that
//! the weights off the connectome stay exactly 0.
//!
//! The connectome is bio2art's Drosophila region matrix expanded to 2 neurons per region; the
//! layer maps the activity of every neuron (source) to every neuron (target) through the
//! connections only, `y = tanh(x·(W ⊙ C) + b)` with `C[source, target]` = bio2art's topology,
//! i.e. `DenseConfig::sz(n, n, MaskSpec::binary(&net.connected, n, n)?)`. The task: reproduce a
//! teacher layer with random weights on the same connectome (a regression, MSE loss).
//!
//! `cargo run --release -p biolayers --example connectome_dense`

use bio2art::{Bio2artConfig, Connectome, NeuronDensity};
use bioautograd::Tensor;
use biokernels::TileKind;
use biolayers::layers::{Activation, DenseConfig, Module, Sequential};
use biolayers::optim::OptimizerConfig;
use biolayers::train::train_step;
use biomask::MaskSpec;
use biorng::Stream;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connectome = Connectome::load("Macaque_Normalized")?;
    let config = Bio2artConfig {
        neuron_density: NeuronDensity::Uniform(8),
        target_sparsity: 0.3,
        ..Bio2artConfig::default()
    };
    let net = bio2art::convert(&connectome, &config, &mut Stream::seeded(1))?;
    let n = net.n_neurons;

    // The connectome as the mask of a dense layer: one line.
    let layer = DenseConfig::sz(n, n, MaskSpec::binary(&net.connected, n, n)?).init(&mut Stream::seeded(2))?;
    let support = layer.support();
    let kept = support.iter().filter(|&&s| s).count();
    println!(
        "{}: {n} neurons, {kept} of {} connections ({:.1}%), w_corr {:.3}",
        connectome.name(),
        n * n,
        100.0 * kept as f64 / (n * n) as f64,
        layer.mask().w_corr()
    );
    if let Some(tiles) = layer.tile_map() {
        let count = |kind: TileKind| tiles.kinds().iter().filter(|&&k| k == kind).count();
        println!(
            "tile map {}x{}: {} empty (skipped), {} full, {} partial",
            tiles.grid().0,
            tiles.grid().1,
            count(TileKind::Empty),
            count(TileKind::Full),
            count(TileKind::Partial)
        );
    }

    // A teacher on the same connectome gives the targets.
    let mut rng = Stream::seeded(3);
    let samples = 256;
    let x: Vec<f32> = (0..samples * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let mut teacher = Sequential::new()
        .push(DenseConfig::sz(n, n, MaskSpec::binary(&net.connected, n, n)?).init(&mut Stream::seeded(4))?)
        .push(Activation::Tanh);
    let target = biolayers::train::predict(&mut teacher, Tensor::from_vec(x.clone(), &[samples, n])?)?.to_vec()?;

    let mut model = Sequential::new().push(layer).push(Activation::Tanh);
    let mut opt = OptimizerConfig::torch_adam(0.01).build()?;
    let mut first = None;
    let mut last = 0.0;
    for epoch in 0..200 {
        let xt = Tensor::from_vec(x.clone(), &[samples, n])?;
        last = train_step(&mut model, &mut opt, xt, |g, out| {
            let t = g.input(Tensor::from_vec(target.clone(), &[samples, n])?);
            g.mse(out, &t)
        })?;
        first.get_or_insert(last);
        if epoch % 50 == 0 {
            println!("epoch {epoch:3}  mse {last:.5}");
        }
    }
    let first = first.unwrap_or(last);
    println!("mse {first:.5} -> {last:.5}");

    let kernel = model.params()[0].value.to_vec()?;
    let off_mask_nonzero = kernel.iter().zip(&support).filter(|(w, s)| !**s && **w != 0.0).count();
    let on_mask_nonzero = kernel.iter().zip(&support).filter(|(w, s)| **s && **w != 0.0).count();
    println!(
        "after training: {off_mask_nonzero} non-zero weights off the connectome (of {}), {on_mask_nonzero} on it (of {kept})",
        n * n - kept
    );
    if off_mask_nonzero != 0 {
        return Err("a weight off the connectome became non-zero".into());
    }
    if last >= first {
        return Err("the loss did not fall".into());
    }
    Ok(())
}
