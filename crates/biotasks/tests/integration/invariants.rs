//! Layout invariants on the project's seeded stream, and typed errors for bad input.

use biotasks::{
    assemble, group_shuffle_split, sample_indices, split_sizes, trim_mask, trim_rows, Dataset, Error, LatentTable,
    NbackMem, PicLatentMem, RngKind, Rngs, SeqMem, Stream, Task,
};

fn table(n_per: usize, classes: i64, dim: usize) -> LatentTable {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        for k in 0..n_per {
            labels.push(c);
            data.extend((0..dim).map(|d| (c as f32) * 10.0 + k as f32 + d as f32 * 0.01));
        }
    }
    LatentTable::new(data, labels, dim).unwrap()
}

#[test]
fn seq_mem_layout() {
    let p = SeqMem {
        pattern_length: 4,
        trials: 5,
        ..SeqMem::default()
    };
    let t = p.generate(&mut Stream::seeded(1)).unwrap();
    assert_eq!((t.rows(), t.in_dim, t.steps, t.n_trials()), (45, 2, 9, 5));
    for tr in 0..5 {
        let b = tr * 9;
        for s in 0..9 {
            assert_eq!(t.trial_index[b + s], tr as i64);
            assert_eq!(t.x_row(b + s)[0], if s == 4 { 1.0 } else { 0.0 });
        }
        for s in 0..4 {
            assert_eq!(t.y[b + 5 + s], t.x_row(b + s)[1]);
            assert_eq!(t.y[b + s], 0.0);
            assert_eq!(t.x_row(b + 5 + s)[1], 0.0);
        }
    }
    assert_eq!(trim_rows(&t.y).len(), 20);
}

#[test]
fn nback_layout_and_labels() {
    let p = NbackMem {
        trial_length: 5,
        n_back: 3,
        trials: 6,
    };
    let t = p.generate(&mut Stream::seeded(2)).unwrap();
    assert_eq!((t.rows(), t.n_trials()), (72, 12));
    for tr in 0..12 {
        let b = tr * 6;
        let v = |s: usize| t.x_row(b + s)[1];
        assert_eq!(t.x_row(b + 4)[0], 1.0);
        assert_eq!(t.x_row(b + 5), &[0.0, 0.0]);
        let matching = tr < 6;
        assert_eq!(v(1) == v(4), matching, "trial {tr}");
        assert_eq!(t.y[b + 5], if matching { 2.0 } else { 1.0 });
    }
    let keep = trim_mask(&t.y);
    assert_eq!(keep.iter().filter(|&&k| k).count(), 12);
}

#[test]
fn pic_latent_layout() {
    let tab = table(3, 10, 4);
    let p = PicLatentMem {
        trial_length: 5,
        n_back: 2,
        trials: 4,
        rescale: false,
    };
    let t = p.generate(&tab, &mut Stream::seeded(3)).unwrap();
    assert_eq!((t.rows(), t.in_dim, t.steps), (8 * 7, 5, 7));
    for tr in 0..8 {
        let b = tr * 7;
        let img = |s: usize| &t.x_row(b + s)[1..];
        // the label is the integer part / 10 of the first feature
        let lab = |s: usize| (img(s)[0] / 10.0).floor() as i64;
        assert_eq!(t.x_row(b + 5)[0], 1.0);
        assert!(t.x_row(b + 6).iter().all(|&v| v == 0.0));
        let matching = tr < 4;
        assert_eq!(img(2) == img(4), matching);
        let target = lab(4);
        let others: Vec<usize> = (0..5).filter(|&s| s != 4 && !(matching && s == 2)).collect();
        assert!(others.iter().all(|&s| lab(s) != target));
        assert_eq!(t.y[b + 6], if matching { 2.0 } else { 1.0 });
    }
}

#[test]
fn assembly_keeps_trials_whole() {
    let task = Task::NbackMem(NbackMem {
        trial_length: 5,
        n_back: 2,
        trials: 10,
    });
    let mut rngs = Rngs::seeded(4);
    let trials = task.generate(None, &mut rngs).unwrap();
    let split = assemble(&trials, 0.8, &mut rngs.np).unwrap();
    assert_eq!((split.train.n_trials(), split.validate.n_trials()), (16, 4));
    for part in [&split.train, &split.validate] {
        for chunk in part.trial_index.chunks(6) {
            assert!(chunk.iter().all(|&i| i == chunk[0]));
        }
    }
    let mut all = split.train.unique_ids();
    all.extend(split.validate.unique_ids());
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>());
    let ds = Dataset::new(split.train, &mut rngs.np);
    let (x, y, b) = ds.batch(0, 128);
    assert_eq!((b, x.len(), y.len()), (16, 16 * 6 * 2, 16 * 6));
    assert_eq!(ds.item_rows(0).len(), 6);
}

#[test]
fn sample_indices_equals_cpython_sample_on_python_stream() {
    for (n, k) in [(36, 4), (36, 7), (9000, 4), (5, 5), (100, 30)] {
        let mut a = Stream::python(17);
        let mut b = biorng::PyRandom::new(17);
        let pop: Vec<usize> = (0..n).collect();
        assert_eq!(sample_indices(&mut a, n, k), b.sample(&pop, k).unwrap(), "n={n} k={k}");
    }
}

#[test]
fn bad_parameters_are_typed_errors() {
    let e = NbackMem {
        trial_length: 5,
        n_back: 5,
        trials: 2,
    }
    .generate(&mut Stream::seeded(0))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { param: "n_back", .. }), "{e}");
    let e = NbackMem {
        trial_length: 5,
        n_back: 0,
        trials: 2,
    }
    .generate(&mut Stream::seeded(0))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { param: "n_back", .. }), "{e}");
    let e = SeqMem {
        pattern_length: 0,
        ..SeqMem::default()
    }
    .generate(&mut Stream::seeded(0))
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidParameter {
                param: "pattern_length",
                ..
            }
        ),
        "{e}"
    );
    let e = SeqMem {
        trials: 0,
        ..SeqMem::default()
    }
    .generate(&mut Stream::seeded(0))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { param: "trials", .. }), "{e}");
    let e = SeqMem {
        high: f64::NAN,
        ..SeqMem::default()
    }
    .generate(&mut Stream::seeded(0))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { param: "high", .. }), "{e}");
    for ts in [0.0, 1.0, -0.5, f64::NAN, 0.05] {
        let e = split_sizes(10, ts).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidParameter {
                    param: "train_size",
                    ..
                }
            ),
            "{ts}: {e}"
        );
    }
    assert_eq!(split_sizes(14, 0.7).unwrap(), (9, 5));
    let t = SeqMem {
        trials: 1,
        ..SeqMem::default()
    }
    .generate(&mut Stream::seeded(0))
    .unwrap();
    assert!(group_shuffle_split(&t, 0.8, &mut Stream::seeded(0)).is_err());
    // two classes of two images: a TL = 4 trial needs 3 images of the other class
    let tab = table(2, 2, 3);
    let p = PicLatentMem {
        trial_length: 4,
        n_back: 1,
        trials: 1,
        rescale: true,
    };
    let e = p.generate(&tab, &mut Stream::seeded(0)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotEnoughImages {
                needed: 3,
                available: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = LatentTable::new(vec![0.0; 5], vec![0, 1], 3).unwrap_err();
    assert!(matches!(e, Error::Shape { what: "latents", .. }), "{e}");
    let e = LatentTable::new(vec![0.0, f32::NAN], vec![0, 1], 1).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 1, .. }), "{e}");
    let e = Task::PicLatentMem(p).generate(None, &mut Rngs::seeded(0)).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { param: "latents", .. }), "{e}");
    assert!(RngKind::Numpy.stream(1 << 32).is_err());
    assert!("numpy".parse::<RngKind>().is_ok() && "mt".parse::<RngKind>().is_err());
}

#[test]
fn npy_loading_errors() {
    let dir = std::env::temp_dir().join(format!("biotasks-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lat = dir.join("lat.npy");
    let lab = dir.join("lab.npy");
    bionpy::write_npy(&lat, &[3, 2], &[0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    bionpy::write_npy(&lab, &[3], &[0i64, 1, 1]).unwrap();
    let t = LatentTable::from_npy(&lat, &lab).unwrap();
    assert_eq!((t.len(), t.dim(), t.labels()), (3, 2, &[0i64, 1, 1][..]));
    bionpy::write_npy(&lab, &[3], &[0u8, 1, 1]).unwrap();
    assert_eq!(LatentTable::from_npy(&lat, &lab).unwrap().labels(), &[0, 1, 1]);
    bionpy::write_npy(&lab, &[2], &[0i64, 1]).unwrap();
    // The error names the file it is about.
    match LatentTable::from_npy(&lat, &lab).unwrap_err() {
        Error::Data { path, detail } => assert!(path == lab && detail.contains("labels"), "{detail}"),
        other => panic!("expected a data error naming lab.npy, got {other}"),
    }
    bionpy::write_npy(&lab, &[3], &[0f64, 1.0, 1.0]).unwrap();
    assert!(matches!(LatentTable::from_npy(&lat, &lab).unwrap_err(), Error::Npy(_)));
    assert!(matches!(
        LatentTable::from_npy(&dir.join("missing.npy"), &lab).unwrap_err(),
        Error::Npy(_)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
