//! The inputs of a sweep: the connectome of `[net]` (bundled, or `C_<net_name>.npy` from
//! `[paths] path_to_network`) converted to the neuron-level network, and the `pic_latent_mem`
//! latent table of `[paths]`. Both are loaded before anything is written, so a missing input
//! leaves no results folder behind.

use std::path::{Path, PathBuf};

use bio2art::{Bio2artNetwork, Connectome};
use biotasks::LatentTable;

use super::config::RunsConfig;
use crate::error::{Error, Result};
use crate::rnn::Bio2artSettings;

fn load_connectome(cfg: &RunsConfig) -> Result<Connectome> {
    let net = &cfg.net;
    let folder = cfg.paths.path_to_network.trim();
    let connectome = if folder.is_empty() {
        Connectome::load(&net.net_name).map_err(|e| Error::Config {
            file: PathBuf::from("config"),
            key: "[net] net_name".into(),
            detail: e.to_string(),
        })?
    } else {
        let path = Path::new(folder).join(format!("C_{}.npy", net.net_name));
        if !path.is_file() {
            return Err(Error::Config {
                file: PathBuf::from("config"),
                key: "[paths] path_to_network".into(),
                detail: format!(
                    "{} not found (leave path_to_network empty to use the connectomes bundled with bio2art)",
                    path.display()
                ),
            });
        }
        let arr = bionpy::read_npy::<f64>(&path)?;
        if arr.shape.len() != 2 || arr.shape[0] != arr.shape[1] {
            return Err(crate::error::shape(
                "connectome",
                "a square (N, N) matrix",
                format!("{:?} in {}", arr.shape, path.display()),
            ));
        }
        Connectome::from_matrix(net.net_name.clone(), arr.shape[0], arr.data)?
    };
    if connectome.n_regions() != net.rnn_size {
        return Err(Error::Config {
            file: PathBuf::from("config"),
            key: "[net] rnn_size".into(),
            detail: format!(
                "{} but {} has {} regions (upstream would fail here too)",
                net.rnn_size,
                net.net_name,
                connectome.n_regions()
            ),
        });
    }
    Ok(connectome)
}

/// Converts the connectome of `[net]` as upstream does (target_sparsity 0.8, intrinsic
/// connections, target_sparsity_intrinsic 1, no self-connections), from `[run] seed`.
pub fn network(cfg: &RunsConfig) -> Result<Bio2artNetwork> {
    let settings = Bio2artSettings {
        neurons_per_region: cfg.net.nr_neurons,
        target_sparsity: 0.8,
        rand_partition: cfg.net.rand_partition,
        seed: cfg.run.seed,
    };
    settings.network(&load_connectome(cfg)?)
}

fn resolve_input(path: &str, data: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return p;
    }
    let data_dir = data
        .map(Path::to_path_buf)
        .or_else(|| biotasks::data::resolve_data_dir(None).ok());
    match data_dir.map(|d| d.join(&p)) {
        Some(d) if d.exists() => d,
        _ => p,
    }
}

/// Loads the `pic_latent_mem` latent table named by `[paths]`.
pub fn load_latents(cfg: &RunsConfig, data: Option<&Path>) -> Result<LatentTable> {
    let latents = resolve_input(&cfg.paths.path_to_latents, data);
    let labels = resolve_input(&cfg.paths.path_to_latent_labels, data);
    for (p, key) in [
        (&latents, "[paths] path_to_latents"),
        (&labels, "[paths] path_to_latent_labels"),
    ] {
        if !p.is_file() {
            return Err(Error::Config {
                file: PathBuf::from("config"),
                key: key.into(),
                detail: format!(
                    "{} not found: pic_latent_mem needs the (10000, 50) MNIST latent table and its labels as .npy \
                     (create them with `cargo xtask mnist-latents`), looked in --data then the working directory",
                    p.display()
                ),
            });
        }
    }
    Ok(LatentTable::from_npy(&latents, &labels)?)
}
