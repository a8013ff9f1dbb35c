//! Times the schizo-cifar convolutions (batch 32) pass by pass: forward, input gradient and
//! weight gradient, then the masked dense layer's three products; median of 20 calls, GFLOP/s.
//!
//! `cargo run --release -p biokernels --example conv_layers` (operands warm in cache);
//! `FLUSH=1 ...` writes 256 MiB between calls, so every call starts from cold caches, which is
//! closer to a training step, where each layer's operands were last touched many layers ago.
use biokernels::conv::{conv2d, conv2d_backward_input, conv2d_backward_weight, Conv2dGeometry, Padding};
use biokernels::{masked_matmul, masked_matmul_dw, masked_matmul_dx, Beta, MatMut, MatRef, TileMap, TileSize};
use std::time::Instant;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v = Vec::new();
    let flush = std::env::var("FLUSH").is_ok();
    let mut junk = if flush { vec![1u8; 256 << 20] } else { Vec::new() };
    for _ in 0..reps {
        if flush {
            for b in junk.iter_mut().step_by(64) {
                *b = b.wrapping_add(1);
            }
        }
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let b = 32;
    let layers = [
        (
            "conv1 3->32 same 32x32",
            Conv2dGeometry::new(b, 3, (32, 32), 32, (3, 3)).with_padding(Padding::Same),
        ),
        (
            "conv2 32->32 valid 32x32",
            Conv2dGeometry::new(b, 32, (32, 32), 32, (3, 3)),
        ),
        (
            "conv3 32->64 same 15x15",
            Conv2dGeometry::new(b, 32, (15, 15), 64, (3, 3)).with_padding(Padding::Same),
        ),
        (
            "conv4 64->64 valid 15x15",
            Conv2dGeometry::new(b, 64, (15, 15), 64, (3, 3)),
        ),
    ];
    let mut total = [0.0; 3];
    for (name, g) in layers {
        let x: Vec<f32> = (0..g.input_len())
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let w: Vec<f32> = (0..g.weight_len())
            .map(|i| ((i * 104729) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let ylen = g.output_len().unwrap();
        let dy: Vec<f32> = (0..ylen).map(|i| ((i * 31) % 1000) as f32 * 1e-3 - 0.5).collect();
        let mut y = vec![0.0; ylen];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let bias = vec![0.1; g.weight_shape()[3]];
        let flops = 2.0 * ylen as f64 * (g.weight_shape()[0] * g.weight_shape()[1] * g.weight_shape()[2]) as f64;
        let tf = time(20, || conv2d(&g, &x, &w, None, Some(&bias), &mut y).unwrap());
        let tx = time(20, || conv2d_backward_input(&g, &dy, &w, None, &mut dx).unwrap());
        let tw = time(20, || conv2d_backward_weight(&g, &x, &dy, None, &mut dw).unwrap());
        total[0] += tf;
        total[1] += tx;
        total[2] += tw;
        println!(
            "{name:28} fwd {:6.2} ms {:5.1} GF/s | dx {:6.2} ms {:5.1} GF/s | dw {:6.2} ms {:5.1} GF/s",
            tf * 1e3,
            flops / tf * 1e-9,
            tx * 1e3,
            flops / tx * 1e-9,
            tw * 1e3,
            flops / tw * 1e-9
        );
    }
    println!(
        "total fwd {:.2} ms dx {:.2} ms dw {:.2} ms",
        total[0] * 1e3,
        total[1] * 1e3,
        total[2] * 1e3
    );

    // The masked dense layer 2304 -> 512 (a band of half the width for r = 0.5; full for r = 0).
    let (m, k, n) = (b, 2304, 512);
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 1000) as f32 * 1e-3 - 0.5).collect();
    let dy: Vec<f32> = (0..m * n).map(|i| ((i * 31) % 1000) as f32 * 1e-3 - 0.5).collect();
    for (name, band) in [
        ("dense 2304->512 full", f64::INFINITY),
        ("dense 2304->512 band r=0.5", 0.25),
    ] {
        let tiles = TileMap::from_fn(k, n, TileSize::CPU_DEFAULT, |i, j| {
            ((i as f64 / k as f64) - (j as f64 / n as f64)).abs() <= band
        })
        .unwrap();
        let (mut y, mut dx, mut dw) = (vec![0.0; m * n], vec![0.0; m * k], vec![0.0; k * n]);
        let xm = MatRef::new(&x, m, k).unwrap();
        let wm = MatRef::new(&w, k, n).unwrap();
        let dym = MatRef::new(&dy, m, n).unwrap();
        let tf = time(20, || {
            masked_matmul(xm, wm, &tiles, MatMut::new(&mut y, m, n).unwrap(), Beta::Zero).unwrap()
        });
        let tx = time(20, || {
            masked_matmul_dx(dym, wm, &tiles, MatMut::new(&mut dx, m, k).unwrap(), Beta::Zero).unwrap()
        });
        let tw = time(20, || {
            masked_matmul_dw(xm, dym, &tiles, MatMut::new(&mut dw, k, n).unwrap(), Beta::Zero).unwrap()
        });
        let flops = 2.0 * (m * k * n) as f64;
        println!(
            "{name:28} fwd {:6.2} ms {:5.1} GF/s | dx {:6.2} ms {:5.1} GF/s | dw {:6.2} ms {:5.1} GF/s (dense-equivalent)",
            tf * 1e3, flops / tf * 1e-9, tx * 1e3, flops / tx * 1e-9, tw * 1e3, flops / tw * 1e-9
        );
    }
}
