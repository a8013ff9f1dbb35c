//! Dense and masked matrix products, through `biokernels` (f32) or plain loops (f64).
//!
//! ```text
//! matmul:         Y = X · W            dX = dY · Wᵀ          dW = Xᵀ · dY
//! masked_matmul:  Y = X · (W ⊙ M)      dX = dY · (W ⊙ M)ᵀ    dW = (Xᵀ · dY) ⊙ M
//! ```
//!
//! The masked weight gradient is computed only on the mask's support (entries off it are
//! exactly 0), so a masked weight never leaves its support under gradient descent.
//!
//! # Shapes
//! `x (m, k)`, `w (k, n)`, mask `(k, n)` → `y (m, n)`.

use std::sync::Arc;

use biokernels::TileMap;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::graph::{Graph, Var};
use crate::shape::check_rank;
use crate::tensor::Tensor;

impl<T: Float> Graph<T> {
    /// `Y = X · W`. See the [module docs](self).
    ///
    /// # Errors
    /// [`Error::Rank`] unless both are 2-D, [`Error::ShapeMismatch`] when `x.cols != w.rows`.
    pub fn matmul(&self, x: &Var, w: &Var) -> Result<Var> {
        self.product("matmul", x, w, None)
    }

    /// `Y = X · (W ⊙ M)` with the mask compiled into a [`TileMap`] (`(k, n)`, e.g.
    /// `TileMap::from_mask(&mask, TileSize::CPU_DEFAULT)`). `dW` is computed only on the
    /// mask's support.
    ///
    /// # Errors
    /// As [`Graph::matmul`], and [`Error::ShapeMismatch`] when the mask is not `w`'s shape.
    pub fn masked_matmul(&self, x: &Var, w: &Var, mask: &Arc<TileMap>) -> Result<Var> {
        self.product("masked_matmul", x, w, Some(mask.clone()))
    }

    fn product(&self, op: &'static str, x: &Var, w: &Var, mask: Option<Arc<TileMap>>) -> Result<Var> {
        let (xt, wt) = self.get2_any(op, x, w)?;
        check_rank(op, xt.shape(), 2)?;
        check_rank(op, wt.shape(), 2)?;
        let (m, k, n) = (xt.shape()[0], xt.shape()[1], wt.shape()[1]);
        if wt.shape()[0] != k {
            return Err(Error::ShapeMismatch {
                op,
                lhs: xt.shape().to_vec(),
                rhs: wt.shape().to_vec(),
            });
        }
        if let Some(mk) = &mask {
            if mk.shape() != [k, n] {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: wt.shape().to_vec(),
                    rhs: mk.shape().to_vec(),
                });
            }
        }
        if xt.is_cuda() {
            return self.gpu_product(op, x, w, xt, wt, mask, (m, k, n));
        }
        let y = T::mm(xt.as_slice()?, wt.as_slice()?, mask.as_deref(), m, k, n)?;
        Ok(
            self.push(Tensor::from_parts(y, vec![m, n]), &[*x, *w], move |g, needs| {
                let mk = mask.as_deref();
                let dx = if needs[0] {
                    Some(T::mm_da(g, wt.as_slice()?, mk, m, k, n)?)
                } else {
                    None
                };
                let dw = if needs[1] {
                    Some(T::mm_db(xt.as_slice()?, g, mk, m, k, n)?)
                } else {
                    None
                };
                Ok(vec![dx, dw])
            }),
        )
    }
}
