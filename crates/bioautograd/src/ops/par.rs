//! Element-wise loops split over the rayon pool when the tensor is large enough to pay for it.
//!
//! Each output element depends only on its own inputs, so the results are identical for any
//! number of threads.

use rayon::prelude::*;

/// Elements per rayon task; smaller tensors run on the calling thread (a task costs a few µs).
pub(crate) const PAR_MIN: usize = 1 << 15;

/// `xs.map(f)`, in parallel for large inputs.
pub(crate) fn map<T, U>(xs: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U>
where
    T: Copy + Sync,
    U: Send,
{
    if xs.len() < 2 * PAR_MIN {
        return xs.iter().map(|&v| f(v)).collect();
    }
    xs.par_iter().with_min_len(PAR_MIN).map(|&v| f(v)).collect()
}

/// `(a, b).map(f)` element by element, in parallel for large inputs.
pub(crate) fn zip_map<A, B, U>(a: &[A], b: &[B], f: impl Fn(A, B) -> U + Sync) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    U: Send,
{
    debug_assert_eq!(a.len(), b.len());
    if a.len() < 2 * PAR_MIN {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    a.par_iter()
        .zip(b.par_iter())
        .with_min_len(PAR_MIN)
        .map(|(&x, &y)| f(x, y))
        .collect()
}

/// `(a, b, c).map(f)` element by element, in parallel for large inputs.
pub(crate) fn zip3_map<A, B, C, U>(a: &[A], b: &[B], c: &[C], f: impl Fn(A, B, C) -> U + Sync) -> Vec<U>
where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    U: Send,
{
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    if a.len() < 2 * PAR_MIN {
        return a.iter().zip(b).zip(c).map(|((&x, &y), &z)| f(x, y, z)).collect();
    }
    a.par_iter()
        .zip(b.par_iter())
        .zip(c.par_iter())
        .with_min_len(PAR_MIN)
        .map(|((&x, &y), &z)| f(x, y, z))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_maps_equal_the_sequential_ones_on_both_sides_of_the_threshold() {
        for n in [0, 7, 2 * PAR_MIN - 1, 2 * PAR_MIN, 5 * PAR_MIN + 3] {
            let a: Vec<f32> = (0..n).map(|i| (i % 97) as f32 - 48.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.5).collect();
            let c: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
            assert_eq!(
                map(&a, |v| v * 2.0 + 1.0),
                a.iter().map(|v| v * 2.0 + 1.0).collect::<Vec<_>>()
            );
            let want2: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x * y - 1.0).collect();
            assert_eq!(zip_map(&a, &b, |x, y| x * y - 1.0), want2);
            let want3: Vec<f32> = a.iter().zip(&b).zip(&c).map(|((x, y), z)| x * y + z).collect();
            assert_eq!(zip3_map(&a, &b, &c, |x, y, z| x * y + z), want3);
        }
    }
}
