//! The tape: [`Graph`], [`Var`], [`Gradients`] and [`Mode`].
//!
//! A [`Graph`] records every op as a node holding its value, its parents and a backward
//! closure. Node ids are allocated in creation order, which is a topological order, so
//! [`Graph::backward`] walks the ids downwards from the loss, calls each node's closure with
//! the node's upstream gradient and accumulates the results into the parents.
//!
//! Leaves are created with [`Graph::input`] (no gradient) or [`Graph::param`] (gradient
//! tracked). A node requires a gradient iff one of its parents does; nodes that do not are
//! never visited by `backward`. [`Gradients`] keeps the gradient of every `param` leaf, looked
//! up by its [`Var`] (whose [`Var::id`] is the parameter id an optimizer can key on).
//!
//! The graph is built anew for every step (define-by-run); building it with
//! [`Mode::Eval`] makes dropout the identity and batch-norm use its running statistics.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use biokernels::cuda::Precision;

use crate::cuda::CudaBuffer;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::{Device, Tensor};

/// Training or evaluation behaviour of dropout and batch-norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Dropout active, batch-norm on batch statistics (and running-stat updates).
    #[default]
    Train,
    /// Dropout is the identity, batch-norm uses its running statistics.
    Eval,
}

/// A handle to a node of one [`Graph`]. Cheap to copy; using it with another graph is an
/// [`Error::ForeignVar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    graph: u64,
    id: usize,
}

impl Var {
    /// The node id, unique within its graph (creation order).
    pub fn id(&self) -> usize {
        self.id
    }
}

/// A stable parameter identity that outlives graphs: a layer draws one per weight at init
/// ([`ParamId::fresh`]) and registers the weight with [`Graph::param_with_id`] at every step,
/// so an optimizer can key its state (momentum, Adam moments) on it and look the gradient up
/// with [`Gradients::get_by_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u64);

static NEXT_PARAM: AtomicU64 = AtomicU64::new(1);

impl ParamId {
    /// A process-wide unique id.
    pub fn fresh() -> Self {
        ParamId(NEXT_PARAM.fetch_add(1, Ordering::Relaxed))
    }
}

/// A backward closure: `(upstream gradient, which parents need one)` → one gradient per parent
/// (`None` where not needed), each with its parent's element count.
pub(crate) type BackwardFn<T> = Box<dyn Fn(&[T], &[bool]) -> Result<Vec<Option<Vec<T>>>>>;

/// The backward closure of an op that ran on a CUDA device: device gradients in and out (each
/// with its parent's element count, any `rows × cols`).
pub(crate) type DeviceBackwardFn = Box<dyn Fn(&CudaBuffer, &[bool]) -> Result<Vec<Option<CudaBuffer>>>>;

enum Backward<T> {
    Host(BackwardFn<T>),
    Device(DeviceBackwardFn),
}

/// A gradient being accumulated: on the host, or on the device of its node.
enum GradBuf<T> {
    Host(Vec<T>),
    Device(CudaBuffer),
}

impl<T: Float> GradBuf<T> {
    fn add(&mut self, other: GradBuf<T>) -> Result<()> {
        match (self, other) {
            (GradBuf::Host(acc), GradBuf::Host(g)) => {
                acc.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                Ok(())
            }
            (GradBuf::Device(acc), GradBuf::Device(g)) => acc.add_assign(&g),
            (GradBuf::Host(_), GradBuf::Device(g)) => Err(Error::DeviceMismatch {
                op: "backward",
                lhs: Device::Cpu,
                rhs: g.device(),
            }),
            (GradBuf::Device(acc), GradBuf::Host(_)) => Err(Error::DeviceMismatch {
                op: "backward",
                lhs: acc.device(),
                rhs: Device::Cpu,
            }),
        }
    }
}

struct Node<T: Float> {
    value: Tensor<T>,
    parents: Vec<usize>,
    backward: Option<Backward<T>>,
    requires_grad: bool,
    is_param: bool,
    param_id: Option<ParamId>,
}

static NEXT_GRAPH: AtomicU64 = AtomicU64::new(1);

/// A define-by-run tape. See the [module docs](self).
///
/// ```
/// use bioautograd::{Graph, Tensor};
/// # fn main() -> bioautograd::Result<()> {
/// let g = Graph::new();
/// let x = g.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
/// let w = g.param(Tensor::from_vec(vec![0.5, -1.0, 0.25, 2.0], &[2, 2])?);
/// let y = g.matmul(&x, &w)?;
/// let loss = g.cross_entropy(&y, &[0, 1])?;
/// let grads = g.backward(&loss)?;
/// assert_eq!(grads.get(&w).map(|t| t.shape().to_vec()), Some(vec![2, 2]));
/// # Ok(())
/// # }
/// ```
pub struct Graph<T: Float = f32> {
    id: u64,
    nodes: RefCell<Vec<Node<T>>>,
    mode: Cell<Mode>,
    precision: Cell<Precision>,
}

impl<T: Float> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> std::fmt::Debug for Graph<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("id", &self.id)
            .field("nodes", &self.nodes.borrow().len())
            .field("mode", &self.mode.get())
            .finish()
    }
}

impl<T: Float> Graph<T> {
    /// An empty graph in [`Mode::Train`].
    pub fn new() -> Self {
        Self::with_mode(Mode::Train)
    }

    /// An empty graph in `mode`.
    pub fn with_mode(mode: Mode) -> Self {
        Graph {
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Vec::new()),
            mode: Cell::new(mode),
            precision: Cell::new(crate::cuda::default_precision()),
        }
    }

    /// The arithmetic of the matrix products (dense, masked, convolutions) of ops recorded on a
    /// CUDA device: [`Precision::F32`] (exact f32, the default) or [`Precision::Tf32`] (tensor
    /// cores); new graphs start with [`crate::cuda::default_precision`]. The CPU path is
    /// always f32.
    pub fn gpu_precision(&self) -> Precision {
        self.precision.get()
    }

    /// Sets [`Graph::gpu_precision`] for the ops recorded from now on. With
    /// [`Precision::Bf16`] each product's operands are rounded to bf16 copies on the device
    /// (mixed precision: the tensors and master weights stay f32, the sums are f32).
    ///
    /// # Errors
    /// None today; `Result` for precisions a device may refuse.
    pub fn set_gpu_precision(&self, precision: Precision) -> Result<()> {
        self.precision.set(precision);
        Ok(())
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode.get()
    }

    /// Switches the mode for the ops recorded from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.set(mode);
    }

    /// `mode() == Mode::Train`.
    pub fn is_training(&self) -> bool {
        self.mode.get() == Mode::Train
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// `true` before the first node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leaf(&self, value: Tensor<T>, is_param: bool, param_id: Option<ParamId>) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value,
            parents: Vec::new(),
            backward: None,
            requires_grad: is_param,
            is_param,
            param_id,
        });
        Var {
            graph: self.id,
            id: nodes.len() - 1,
        }
    }

    /// A leaf without gradient (data, labels, masks).
    pub fn input(&self, value: Tensor<T>) -> Var {
        self.leaf(value, false, None)
    }

    /// A leaf whose gradient [`Graph::backward`] returns (weights, biases, or an input whose
    /// gradient you want).
    pub fn param(&self, value: Tensor<T>) -> Var {
        self.leaf(value, true, None)
    }

    /// A `param` leaf tagged with a stable [`ParamId`].
    ///
    /// # Errors
    /// [`Error::DuplicateParam`] if `id` is already registered in this graph.
    pub fn param_with_id(&self, id: ParamId, value: Tensor<T>) -> Result<Var> {
        if self.nodes.borrow().iter().any(|n| n.param_id == Some(id)) {
            return Err(Error::DuplicateParam { id: id.0 });
        }
        Ok(self.leaf(value, true, Some(id)))
    }

    /// The [`ParamId`] a leaf was registered with, if any.
    ///
    /// # Errors
    /// [`Error::ForeignVar`].
    pub fn param_id(&self, v: &Var) -> Result<Option<ParamId>> {
        self.check("param_id", v)?;
        Ok(self.nodes.borrow()[v.id].param_id)
    }

    /// Every `param` leaf, in creation order.
    pub fn params(&self) -> Vec<Var> {
        self.nodes
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_param)
            .map(|(id, _)| Var { graph: self.id, id })
            .collect()
    }

    pub(crate) fn check(&self, op: &'static str, v: &Var) -> Result<()> {
        if v.graph != self.id || v.id >= self.len() {
            return Err(Error::ForeignVar { op });
        }
        Ok(())
    }

    /// The value of a node (a cheap clone sharing the buffer).
    ///
    /// # Errors
    /// [`Error::ForeignVar`].
    pub fn value(&self, v: &Var) -> Result<Tensor<T>> {
        self.check("value", v)?;
        Ok(self.nodes.borrow()[v.id].value.clone())
    }

    /// The shape of a node.
    ///
    /// # Errors
    /// [`Error::ForeignVar`].
    pub fn shape(&self, v: &Var) -> Result<Vec<usize>> {
        self.check("shape", v)?;
        Ok(self.nodes.borrow()[v.id].value.shape().to_vec())
    }

    /// The value of an operand of an op that runs on the host only: a CUDA value is an
    /// [`Error::UnsupportedOnDevice`] naming `op`.
    pub(crate) fn get(&self, op: &'static str, v: &Var) -> Result<Tensor<T>> {
        let t = self.get_any(op, v)?;
        if t.is_cuda() {
            return Err(Error::UnsupportedOnDevice { op, device: t.device() });
        }
        Ok(t)
    }

    /// The value of an operand of an op with a CUDA path (any device).
    pub(crate) fn get_any(&self, op: &'static str, v: &Var) -> Result<Tensor<T>> {
        self.check(op, v)?;
        Ok(self.nodes.borrow()[v.id].value.clone())
    }

    /// Values of two operands of a host-only op (see [`Graph::get`]).
    pub(crate) fn get2(&self, op: &'static str, a: &Var, b: &Var) -> Result<(Tensor<T>, Tensor<T>)> {
        let (ta, tb) = self.get2_any(op, a, b)?;
        if ta.is_cuda() {
            return Err(Error::UnsupportedOnDevice {
                op,
                device: ta.device(),
            });
        }
        Ok((ta, tb))
    }

    /// Values of two operands that must be on the same device (any device).
    pub(crate) fn get2_any(&self, op: &'static str, a: &Var, b: &Var) -> Result<(Tensor<T>, Tensor<T>)> {
        let (ta, tb) = (self.get_any(op, a)?, self.get_any(op, b)?);
        same_device(op, &[&ta, &tb])?;
        Ok((ta, tb))
    }

    /// Records an op node. The closure is dropped when no parent requires a gradient.
    pub(crate) fn push<F>(&self, value: Tensor<T>, parents: &[Var], backward: F) -> Var
    where
        F: Fn(&[T], &[bool]) -> Result<Vec<Option<Vec<T>>>> + 'static,
    {
        self.push_node(value, parents, Backward::Host(Box::new(backward)))
    }

    /// Records an op node that ran on a CUDA device: its backward takes and returns device
    /// gradients, so they stay (and accumulate) on the device.
    pub(crate) fn push_device<F>(&self, value: Tensor<T>, parents: &[Var], backward: F) -> Var
    where
        F: Fn(&CudaBuffer, &[bool]) -> Result<Vec<Option<CudaBuffer>>> + 'static,
    {
        self.push_node(value, parents, Backward::Device(Box::new(backward)))
    }

    fn push_node(&self, value: Tensor<T>, parents: &[Var], backward: Backward<T>) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        let requires_grad = parents.iter().any(|p| nodes[p.id].requires_grad);
        nodes.push(Node {
            value,
            parents: parents.iter().map(|p| p.id).collect(),
            backward: if requires_grad { Some(backward) } else { None },
            requires_grad,
            is_param: false,
            param_id: None,
        });
        Var {
            graph: self.id,
            id: nodes.len() - 1,
        }
    }

    /// Gradients of a one-element loss with respect to every `param` leaf.
    ///
    /// # Errors
    /// [`Error::NonScalarLoss`], [`Error::ForeignVar`], and errors of the backward kernels.
    pub fn backward(&self, loss: &Var) -> Result<Gradients<T>> {
        let v = self.get_any("backward", loss)?;
        if v.numel() != 1 {
            return Err(Error::NonScalarLoss {
                shape: v.shape().to_vec(),
            });
        }
        let seed = Tensor::from_parts(vec![T::ONE], v.shape().to_vec()).to_device(v.device())?;
        self.backward_with(loss, seed)
    }

    /// Vector-Jacobian product: gradients of `Σ y ⊙ grad` with respect to every `param` leaf.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] (op `"backward"`) when `grad` does not have `y`'s shape,
    /// [`Error::DeviceMismatch`] when it is not on `y`'s device, and the errors of
    /// [`Graph::backward`].
    pub fn backward_with(&self, y: &Var, grad: Tensor<T>) -> Result<Gradients<T>> {
        let yv = self.get_any("backward", y)?;
        if yv.shape() != grad.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                lhs: yv.shape().to_vec(),
                rhs: grad.shape().to_vec(),
            });
        }
        same_device("backward", &[&yv, &grad])?;
        let nodes = self.nodes.borrow();
        let mut grads: Vec<Option<GradBuf<T>>> = (0..=y.id).map(|_| None).collect();
        grads[y.id] = Some(match grad.cuda_buffer() {
            Some(b) => GradBuf::Device(b.clone()),
            None => GradBuf::Host(grad.to_vec()?),
        });
        for id in (0..=y.id).rev() {
            let node = &nodes[id];
            let Some(bw) = &node.backward else { continue };
            let Some(g) = grads[id].take() else { continue };
            let needs: Vec<bool> = node.parents.iter().map(|&p| nodes[p].requires_grad).collect();
            let pgrads: Vec<Option<GradBuf<T>>> = match (bw, g) {
                (Backward::Host(bw), GradBuf::Host(g)) => {
                    bw(&g, &needs)?.into_iter().map(|o| o.map(GradBuf::Host)).collect()
                }
                (Backward::Device(bw), GradBuf::Device(g)) => {
                    bw(&g, &needs)?.into_iter().map(|o| o.map(GradBuf::Device)).collect()
                }
                (_, g) => {
                    let dev = |g: &GradBuf<T>| match g {
                        GradBuf::Host(_) => Device::Cpu,
                        GradBuf::Device(b) => b.device(),
                    };
                    return Err(Error::DeviceMismatch {
                        op: "backward",
                        lhs: node.value.device(),
                        rhs: dev(&g),
                    });
                }
            };
            for ((&p, pg), &need) in node.parents.iter().zip(pgrads).zip(&needs) {
                let (Some(pg), true) = (pg, need) else { continue };
                match &mut grads[p] {
                    Some(acc) => acc.add(pg)?,
                    slot => *slot = Some(pg),
                }
            }
        }
        let ids = nodes
            .iter()
            .take(y.id + 1)
            .enumerate()
            .filter_map(|(i, n)| n.param_id.map(|p| (p, i)))
            .collect();
        let grads = grads
            .into_iter()
            .enumerate()
            .map(|(id, g)| match g {
                Some(GradBuf::Host(g)) if nodes[id].is_param => {
                    Some(Ok(Tensor::from_parts(g, nodes[id].value.shape().to_vec())))
                }
                Some(GradBuf::Device(g)) if nodes[id].is_param => {
                    let shape = nodes[id].value.shape();
                    Some(g.view_shape(shape).map(|g| Tensor::from_cuda(g, shape.to_vec())))
                }
                _ => None,
            })
            .map(Option::transpose)
            .collect::<Result<Vec<_>>>()?;
        Ok(Gradients {
            graph: self.id,
            grads,
            ids,
        })
    }
}

/// [`Error::DeviceMismatch`] naming `op` unless every tensor is on the first one's device.
pub(crate) fn same_device<T: Float>(op: &'static str, ts: &[&Tensor<T>]) -> Result<()> {
    if let Some((first, rest)) = ts.split_first() {
        if let Some(t) = rest.iter().find(|t| t.device() != first.device()) {
            return Err(Error::DeviceMismatch {
                op,
                lhs: first.device(),
                rhs: t.device(),
            });
        }
    }
    Ok(())
}

/// The gradients of one [`Graph::backward`] call, by parameter.
#[derive(Debug, Clone)]
pub struct Gradients<T: Float = f32> {
    graph: u64,
    grads: Vec<Option<Tensor<T>>>,
    ids: std::collections::HashMap<ParamId, usize>,
}

impl<T: Float> Gradients<T> {
    /// The gradient of a `param` leaf; `None` if the loss does not depend on it (or `v` is not
    /// a param of this graph).
    pub fn get(&self, v: &Var) -> Option<&Tensor<T>> {
        if v.graph != self.graph {
            return None;
        }
        self.grads.get(v.id).and_then(Option::as_ref)
    }

    /// The gradient of the leaf registered with [`Graph::param_with_id`]; `None` if the loss
    /// does not depend on it.
    pub fn get_by_id(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.ids
            .get(&id)
            .and_then(|&i| self.grads.get(i))
            .and_then(Option::as_ref)
    }

    /// The gradient values of a `param` leaf, row-major (what an optimizer consumes); `None`
    /// for a gradient on a CUDA device (read it with [`Gradients::get`]).
    pub fn slice(&self, v: &Var) -> Option<&[T]> {
        self.get(v).and_then(|t| t.as_slice().ok())
    }

    /// Every `(param, gradient)` pair.
    pub fn iter(&self) -> impl Iterator<Item = (Var, &Tensor<T>)> + '_ {
        let graph = self.graph;
        self.grads
            .iter()
            .enumerate()
            .filter_map(move |(id, g)| g.as_ref().map(|g| (Var { graph, id }, g)))
    }
}
