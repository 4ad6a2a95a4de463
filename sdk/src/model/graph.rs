//! An ONNX graph compiled for one row at a time: the nodes the scored
//! output needs, in order, each with the static shape of what it makes.
//!
//! Compiling checks everything a row could trip over, so that running
//! cannot fail: every input of a node is made earlier (a graph that loops
//! or is out of order is refused), every operator is one the runner knows,
//! every shape fits (for a row of the declared number of features), and no
//! value is larger than [`MAX_ELEMENTS`]. The operations a row costs are
//! counted at load ([`Graph::cost`]), so a model that would take long is
//! known before it runs.

use std::collections::HashMap;

use super::onnx::{self, GraphProto, NodeProto, TensorProto};
use super::trees::Ensemble;
use super::{MAX_FEATURES, ModelError};

/// The most elements one value (a weight or an intermediate) may hold.
pub const MAX_ELEMENTS: usize = 1 << 24;
/// The most nodes a graph may have.
pub const MAX_GRAPH_NODES: usize = 4096;
/// The most operations one row may cost (multiply-adds and tree nodes).
pub const MAX_COST: usize = 50_000_000;

/// A value: a constant (a weight) or made while running.
#[derive(Debug, Clone, Copy)]
enum Ref {
    Const(u32),
    Slot(u32),
}

#[derive(Debug, Clone, Copy)]
enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Abs,
    Neg,
}

#[derive(Debug, Clone, Copy)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone)]
enum Step {
    Trees {
        input: Ref,
        ensemble: usize,
    },
    /// `out = alpha * a' * b' + beta * c`, 2-D.
    Gemm {
        a: Ref,
        b: Ref,
        c: Option<Ref>,
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Unary {
        op: Unary,
        a: Ref,
    },
    /// Elementwise with broadcasting: the strides of `a` and `b` over the
    /// output's shape (0 where broadcast).
    Binary {
        op: Binary,
        a: Ref,
        b: Ref,
        a_strides: Vec<usize>,
        b_strides: Vec<usize>,
    },
    /// Softmax over the last axis, in rows of `width`.
    Softmax {
        a: Ref,
        width: usize,
    },
    /// The same data under another shape (Identity, Reshape, Flatten,
    /// Cast to float, ZipMap's probabilities).
    Copy {
        a: Ref,
    },
    /// Concatenation along `axis` (data in blocks of `blocks` per input).
    Concat {
        inputs: Vec<Ref>,
        outer: usize,
        widths: Vec<usize>,
    },
    /// ONNX-ML `Scaler`: `(x - offset) * scale`, per feature.
    Scaler {
        a: Ref,
        offset: Vec<f32>,
        scale: Vec<f32>,
    },
}

/// The compiled graph.
#[derive(Debug, Clone)]
pub struct Graph {
    consts: Vec<(Vec<usize>, Vec<f32>)>,
    /// Each step, with the shape of the slot it writes (slot `i + 1`; slot
    /// 0 is the input row).
    steps: Vec<(Step, Vec<usize>)>,
    pub ensembles: Vec<Ensemble>,
    pub inputs: usize,
    /// The slot of the scored output.
    output: usize,
    /// Operations a row costs.
    pub cost: usize,
    /// The output's producer was a tree ensemble reading the input row
    /// directly (or through shape-only steps): its contributions are per
    /// input feature.
    pub explained: Option<usize>,
}

fn shape_len(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A float tensor's data, from whichever field holds it.
pub fn float_data(t: &TensorProto, node: &str) -> Result<Vec<f32>, ModelError> {
    if t.data_location == 1 {
        return Err(ModelError::Invalid(format!(
            "tensor `{}` (near `{node}`) keeps its data in another file; a model must carry its weights",
            t.name
        )));
    }
    match t.data_type {
        onnx::FLOAT if !t.raw_data.is_empty() => {
            Ok(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        onnx::FLOAT => Ok(t.float_data.clone()),
        onnx::DOUBLE => Ok(t.doubles().into_iter().map(|d| d as f32).collect()),
        onnx::INT64 => Ok(t.int64s().into_iter().map(|d| d as f32).collect()),
        onnx::INT32 => Ok(t.int32_data.iter().map(|&d| d as f32).collect()),
        other => Err(ModelError::Unsupported(format!(
            "tensor `{}` (near `{node}`) has data type {other}; float, double and integer tensors are read",
            t.name
        ))),
    }
}

fn constant(t: &TensorProto, node: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut total: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).ok().filter(|&d| d <= MAX_ELEMENTS);
        total = d.and_then(|d| total.checked_mul(d)).filter(|&t| t <= MAX_ELEMENTS).ok_or_else(|| {
            ModelError::TooLarge(format!("tensor `{}` has more than {MAX_ELEMENTS} elements", t.name))
        })?;
        shape.push(d.unwrap_or(0));
    }
    let data = float_data(t, node)?;
    if data.len() != total {
        return Err(ModelError::Invalid(format!(
            "tensor `{}` has {} values for its shape {shape:?}",
            t.name,
            data.len()
        )));
    }
    Ok((shape, data))
}

/// What a compiled node reads: the names of the values it needs.
fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a onnx::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

impl Graph {
    /// Compiles `graph` for the output `output_name` (found by the caller).
    pub fn compile(graph: &GraphProto, output_name: &str) -> Result<Graph, ModelError> {
        if graph.node.len() > MAX_GRAPH_NODES {
            return Err(ModelError::TooLarge(format!(
                "the graph has {} nodes; at most {MAX_GRAPH_NODES} are supported",
                graph.node.len()
            )));
        }
        let initializers: HashMap<&str, &TensorProto> =
            graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !initializers.contains_key(i.name.as_str()))
            .ok_or_else(|| ModelError::Invalid("the graph has no input".into()))?;
        let inputs = input_features(input)?;
        // Which node makes each value; a value made twice is refused.
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                if producer.insert(out.as_str(), i).is_some() || initializers.contains_key(out.as_str()) {
                    return Err(ModelError::Invalid(format!("the value `{out}` is made more than once")));
                }
            }
        }
        // The nodes the output needs, found backwards; each must come after
        // the nodes it reads (ONNX requires graphs in topological order), so
        // a loop cannot pass.
        let mut needed = vec![false; graph.node.len()];
        let mut stack: Vec<&str> = vec![output_name];
        while let Some(name) = stack.pop() {
            let Some(&i) = producer.get(name) else { continue };
            if std::mem::replace(&mut needed[i], true) {
                continue;
            }
            for input in graph.node[i].input.iter().filter(|n| !n.is_empty()) {
                if let Some(&j) = producer.get(input.as_str())
                    && j >= i
                {
                    return Err(ModelError::Invalid(format!(
                        "node `{}` reads `{input}` before it is made: the graph has a cycle or is out of order",
                        graph.node[i].name
                    )));
                }
                stack.push(input);
            }
        }
        let mut compiler = Compiler {
            graph: Graph {
                consts: Vec::new(),
                steps: Vec::new(),
                ensembles: Vec::new(),
                inputs,
                output: 0,
                cost: 0,
                explained: None,
            },
            values: HashMap::new(),
            shapes: vec![vec![1, inputs]],
            initializers,
            from_input: HashMap::new(),
        };
        compiler.values.insert(input.name.as_str(), Ref::Slot(0));
        compiler.from_input.insert(0, true);
        for (i, node) in graph.node.iter().enumerate() {
            if needed[i] {
                compiler.node(node)?;
            }
        }
        let Some(&Ref::Slot(output)) = compiler.values.get(output_name) else {
            return Err(ModelError::Invalid(format!("the output `{output_name}` is not computed from the input")));
        };
        compiler.graph.output = output as usize;
        if compiler.graph.cost > MAX_COST {
            return Err(ModelError::TooLarge(format!(
                "a row would cost {} operations; at most {MAX_COST} are allowed",
                compiler.graph.cost
            )));
        }
        Ok(compiler.graph)
    }

    /// How many values the output holds.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    fn output_shape(&self) -> &[usize] {
        if self.output == 0 { &[] } else { &self.steps[self.output - 1].1 }
    }

    /// Runs the graph on one row; `slots` is scratch space kept between
    /// rows. Returns the output's values.
    pub fn run<'s>(&self, row: &[f32], slots: &'s mut Vec<Vec<f32>>) -> &'s [f32] {
        slots.resize_with(self.steps.len() + 1, Vec::new);
        slots[0].clear();
        slots[0].extend_from_slice(row);
        for (i, (step, shape)) in self.steps.iter().enumerate() {
            let (done, rest) = slots.split_at_mut(i + 1);
            let out = &mut rest[0];
            out.clear();
            let get = |r: Ref| -> &[f32] {
                match r {
                    Ref::Const(c) => &self.consts[c as usize].1,
                    Ref::Slot(s) => &done[s as usize],
                }
            };
            match step {
                Step::Trees { input, ensemble } => self.ensembles[*ensemble].score(get(*input), out),
                Step::Gemm { a, b, c, alpha, beta, trans_a, trans_b } => {
                    let (m, n) = (shape[0], shape[1]);
                    let a_data = get(*a);
                    let k = a_data.len() / m;
                    let b_data = get(*b);
                    out.resize(m * n, 0.0);
                    for (r, out_row) in out.chunks_exact_mut(n).enumerate() {
                        let a_at = |p: usize| if *trans_a { a_data[p * m + r] } else { a_data[r * k + p] };
                        if *trans_b {
                            // Each output is a dot product of A's row and B's row.
                            for (o, b_row) in out_row.iter_mut().zip(b_data.chunks_exact(k)) {
                                *o = (0..k).map(a_at).zip(b_row).map(|(a, b)| a * b).sum();
                            }
                        } else {
                            // A's row times B, a row of B at a time.
                            for (p, b_row) in b_data.chunks_exact(n).enumerate().take(k) {
                                let a = a_at(p);
                                out_row.iter_mut().zip(b_row).for_each(|(o, b)| *o += a * b);
                            }
                        }
                        if *alpha != 1.0 {
                            out_row.iter_mut().for_each(|o| *o *= alpha);
                        }
                    }
                    if let Some(c) = c {
                        let c_data = get(*c);
                        let c_len = c_data.len();
                        for (idx, o) in out.iter_mut().enumerate() {
                            // C broadcasts as a row, a column or a scalar.
                            let cv = if c_len == m * n {
                                c_data[idx]
                            } else if c_len == n {
                                c_data[idx % n]
                            } else if c_len == m {
                                c_data[idx / n]
                            } else {
                                c_data[0]
                            };
                            *o += beta * cv;
                        }
                    }
                }
                Step::Unary { op, a } => {
                    out.extend(get(*a).iter().map(|&v| match op {
                        Unary::Relu => v.max(0.0),
                        Unary::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                        Unary::Tanh => v.tanh(),
                        Unary::Exp => v.exp(),
                        Unary::Abs => v.abs(),
                        Unary::Neg => -v,
                    }));
                }
                Step::Binary { op, a, b, a_strides, b_strides } => {
                    let (a_data, b_data) = (get(*a), get(*b));
                    let total = shape_len(shape);
                    out.reserve(total);
                    let mut index = vec![0usize; shape.len()];
                    for _ in 0..total {
                        let ai: usize = index.iter().zip(a_strides).map(|(i, s)| i * s).sum();
                        let bi: usize = index.iter().zip(b_strides).map(|(i, s)| i * s).sum();
                        let (x, y) = (a_data[ai], b_data[bi]);
                        out.push(match op {
                            Binary::Add => x + y,
                            Binary::Sub => x - y,
                            Binary::Mul => x * y,
                            Binary::Div => x / y,
                        });
                        for d in (0..shape.len()).rev() {
                            index[d] += 1;
                            if index[d] < shape[d] {
                                break;
                            }
                            index[d] = 0;
                        }
                    }
                }
                Step::Softmax { a, width } => {
                    out.extend_from_slice(get(*a));
                    for row in out.chunks_mut(*width) {
                        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for v in row.iter_mut() {
                            *v = (*v - max).exp();
                            sum += *v;
                        }
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                Step::Copy { a } => out.extend_from_slice(get(*a)),
                Step::Concat { inputs, outer, widths } => {
                    for o in 0..*outer {
                        for (input, &w) in inputs.iter().zip(widths) {
                            out.extend_from_slice(&get(*input)[o * w..(o + 1) * w]);
                        }
                    }
                }
                Step::Scaler { a, offset, scale } => {
                    let data = get(*a);
                    let n = data.len();
                    out.extend((0..n).map(|i| {
                        let o = if offset.len() == 1 { offset[0] } else { offset[i % offset.len()] };
                        let s = if scale.len() == 1 { scale[0] } else { scale[i % scale.len()] };
                        (data[i] - o) * s
                    }));
                }
            }
        }
        &slots[self.output]
    }
}

fn input_features(input: &onnx::ValueInfo) -> Result<usize, ModelError> {
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| ModelError::Unsupported(format!("the input `{}` is not a tensor", input.name)))?;
    if tensor.elem_type != onnx::FLOAT {
        return Err(ModelError::Unsupported(format!(
            "the input `{}` has element type {}; weir scores float (32-bit) inputs: export with a FloatTensorType",
            input.name, tensor.elem_type
        )));
    }
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    let features = match dims {
        [_, last] => last.dim_value,
        [only] => only.dim_value,
        _ => None,
    };
    features.and_then(|f| usize::try_from(f).ok()).filter(|&f| (1..=MAX_FEATURES).contains(&f)).ok_or_else(|| {
        ModelError::Unsupported(format!(
            "the input `{}` must have shape [N, features] with a fixed number of features (1 to {MAX_FEATURES})",
            input.name
        ))
    })
}

struct Compiler<'g> {
    graph: Graph,
    values: HashMap<&'g str, Ref>,
    /// Shapes of the slots (0: the input row).
    shapes: Vec<Vec<usize>>,
    initializers: HashMap<&'g str, &'g TensorProto>,
    /// Slots that hold the input row, reshaped or copied.
    from_input: HashMap<u32, bool>,
}

impl<'g> Compiler<'g> {
    fn value(&mut self, node: &NodeProto, name: &'g str) -> Result<Ref, ModelError> {
        if let Some(&r) = self.values.get(name) {
            return Ok(r);
        }
        let Some(t) = self.initializers.get(name) else {
            return Err(ModelError::Invalid(format!("node `{}` reads `{name}`, which nothing makes", node.name)));
        };
        let c = constant(t, &node.name)?;
        let r = Ref::Const(self.graph.consts.len() as u32);
        self.graph.consts.push(c);
        self.values.insert(name, r);
        Ok(r)
    }

    fn shape(&self, r: Ref) -> &[usize] {
        match r {
            Ref::Const(c) => &self.graph.consts[c as usize].0,
            Ref::Slot(s) => &self.shapes[s as usize],
        }
    }

    fn input(&mut self, node: &'g NodeProto, i: usize) -> Result<Ref, ModelError> {
        let name =
            node.input.get(i).filter(|n| !n.is_empty()).ok_or_else(|| {
                ModelError::Invalid(format!("node `{}` ({}) lacks input {i}", node.name, node.op_type))
            })?;
        self.value(node, name)
    }

    fn push(&mut self, node: &'g NodeProto, step: Step, shape: Vec<usize>) -> Result<(), ModelError> {
        let len = shape_len(&shape);
        if len > MAX_ELEMENTS || shape.len() > 4 {
            return Err(ModelError::TooLarge(format!("node `{}` would make {shape:?}", node.name)));
        }
        let copies_input = match &step {
            Step::Copy { a: Ref::Slot(s) } | Step::Scaler { a: Ref::Slot(s), .. } => self.from_input.contains_key(s),
            _ => false,
        };
        self.graph.cost = self.graph.cost.saturating_add(len);
        let slot = self.shapes.len() as u32;
        self.graph.steps.push((step, shape.clone()));
        self.shapes.push(shape);
        if copies_input {
            self.from_input.insert(slot, true);
        }
        let out = node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| ModelError::Invalid(format!("node `{}` has no output", node.name)))?;
        self.values.insert(out.as_str(), Ref::Slot(slot));
        Ok(())
    }

    /// A node whose output is its first input, as it is.
    fn copy(&mut self, node: &'g NodeProto) -> Result<(), ModelError> {
        let a = self.input(node, 0)?;
        let shape = self.shape(a).to_vec();
        self.push(node, Step::Copy { a }, shape)
    }

    fn unsupported(node: &NodeProto) -> ModelError {
        ModelError::Unsupported(format!(
            "operator `{}{}{}` (node `{}`); weir runs TreeEnsembleClassifier, TreeEnsembleRegressor, Scaler, ZipMap, \
             Gemm, MatMul, Add, Sub, Mul, Div, Relu, Sigmoid, Tanh, Exp, Abs, Neg, Softmax, Identity, Cast, Reshape, \
             Flatten and Concat",
            node.domain,
            if node.domain.is_empty() { "" } else { "." },
            node.op_type.chars().take(64).collect::<String>(),
            node.name
        ))
    }

    fn node(&mut self, node: &'g NodeProto) -> Result<(), ModelError> {
        let ml = node.domain == "ai.onnx.ml";
        if !ml && !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(Self::unsupported(node));
        }
        let bad = |problem: String| ModelError::Invalid(format!("node `{}` ({}): {problem}", node.name, node.op_type));
        match (ml, node.op_type.as_str()) {
            (true, op @ ("TreeEnsembleClassifier" | "TreeEnsembleRegressor")) => {
                let classifier = op == "TreeEnsembleClassifier";
                let input = self.input(node, 0)?;
                let ensemble = Ensemble::from_node(node, classifier)?;
                let width = *self.shape(input).last().unwrap_or(&0);
                if ensemble.features > width {
                    return Err(bad(format!("reads feature {} of {width}", ensemble.features - 1)));
                }
                let from_input = matches!(input, Ref::Slot(s) if self.from_input.contains_key(&s));
                let columns = ensemble.columns();
                self.graph.cost = self.graph.cost.saturating_add(ensemble.cost());
                let index = self.graph.ensembles.len();
                self.graph.ensembles.push(ensemble);
                // A classifier's first output is the label, its second the
                // scores; the scores are what is kept.
                let scores = if classifier { node.output.get(1) } else { node.output.first() };
                let Some(scores) = scores.filter(|s| !s.is_empty()) else {
                    return Err(bad("has no scores output".into()));
                };
                let slot = self.shapes.len() as u32;
                self.graph.steps.push((Step::Trees { input, ensemble: index }, vec![1, columns]));
                self.shapes.push(vec![1, columns]);
                self.values.insert(scores.as_str(), Ref::Slot(slot));
                if from_input {
                    self.graph.explained = Some(index);
                }
                Ok(())
            }
            // The map of class to probability is read as the vector of
            // probabilities in class order.
            (true, "ZipMap") | (false, "Identity") => self.copy(node),
            (true, "Scaler") => {
                let a = self.input(node, 0)?;
                let shape = self.shape(a).to_vec();
                let list = |name: &str| attr(node, name).map(|a| a.floats.clone()).unwrap_or_else(|| vec![0.0]);
                let (offset, scale) = (list("offset"), list("scale"));
                let width = *shape.last().unwrap_or(&1);
                for (name, v) in [("offset", &offset), ("scale", &scale)] {
                    if v.len() != 1 && v.len() != width {
                        return Err(bad(format!("`{name}` has {} values for {width} features", v.len())));
                    }
                }
                self.push(node, Step::Scaler { a, offset, scale }, shape)
            }
            (false, "Gemm" | "MatMul") => {
                let gemm = node.op_type == "Gemm";
                let a = self.input(node, 0)?;
                let b = self.input(node, 1)?;
                let c = if gemm && node.input.get(2).is_some_and(|n| !n.is_empty()) {
                    Some(self.input(node, 2)?)
                } else {
                    None
                };
                let flag = |name| gemm && attr(node, name).is_some_and(|a| a.i != 0);
                let (trans_a, trans_b) = (flag("transA"), flag("transB"));
                let two_d = |s: &[usize]| match s {
                    [r, c] => Some((*r, *c)),
                    [c] => Some((1, *c)),
                    _ => None,
                };
                let (Some(sa), Some(sb)) = (two_d(self.shape(a)), two_d(self.shape(b))) else {
                    return Err(bad("only 1-D and 2-D operands are supported".into()));
                };
                let (m, k) = if trans_a { (sa.1, sa.0) } else { sa };
                let (k2, n) = if trans_b { (sb.1, sb.0) } else { sb };
                if k != k2 {
                    return Err(bad(format!("cannot multiply {sa:?} by {sb:?}")));
                }
                if let Some(c) = c {
                    let len = shape_len(self.shape(c));
                    if ![1, n, m, m * n].contains(&len) {
                        return Err(bad(format!("C has {len} values for a {m}x{n} product")));
                    }
                }
                let scalar = |name, default| attr(node, name).map(|a| a.f).unwrap_or(default);
                let (alpha, beta) = if gemm { (scalar("alpha", 1.0), scalar("beta", 1.0)) } else { (1.0, 0.0) };
                self.graph.cost = self.graph.cost.saturating_add(m * n * k);
                self.push(node, Step::Gemm { a, b, c, alpha, beta, trans_a, trans_b }, vec![m, n])
            }
            (false, op @ ("Relu" | "Sigmoid" | "Tanh" | "Exp" | "Abs" | "Neg")) => {
                let op = match op {
                    "Relu" => Unary::Relu,
                    "Sigmoid" => Unary::Sigmoid,
                    "Tanh" => Unary::Tanh,
                    "Exp" => Unary::Exp,
                    "Abs" => Unary::Abs,
                    _ => Unary::Neg,
                };
                let a = self.input(node, 0)?;
                let shape = self.shape(a).to_vec();
                self.push(node, Step::Unary { op, a }, shape)
            }
            (false, op @ ("Add" | "Sub" | "Mul" | "Div")) => {
                let op = match op {
                    "Add" => Binary::Add,
                    "Sub" => Binary::Sub,
                    "Mul" => Binary::Mul,
                    _ => Binary::Div,
                };
                let a = self.input(node, 0)?;
                let b = self.input(node, 1)?;
                let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
                let rank = sa.len().max(sb.len());
                let pad = |s: &[usize]| {
                    let mut p = vec![1; rank - s.len()];
                    p.extend_from_slice(s);
                    p
                };
                let (pa, pb) = (pad(&sa), pad(&sb));
                let mut shape = Vec::with_capacity(rank);
                for d in 0..rank {
                    shape.push(match (pa[d], pb[d]) {
                        (x, y) if x == y => x,
                        (1, y) => y,
                        (x, 1) => x,
                        _ => return Err(bad(format!("cannot broadcast {sa:?} with {sb:?}"))),
                    });
                }
                let strides = |p: &[usize]| {
                    let mut strides = vec![0; rank];
                    let mut stride = 1;
                    for d in (0..rank).rev() {
                        strides[d] = if p[d] == 1 { 0 } else { stride };
                        stride *= p[d];
                    }
                    strides
                };
                let (a_strides, b_strides) = (strides(&pa), strides(&pb));
                self.push(node, Step::Binary { op, a, b, a_strides, b_strides }, shape)
            }
            (false, "Softmax") => {
                let a = self.input(node, 0)?;
                let shape = self.shape(a).to_vec();
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(-1);
                let last = shape.len() as i64 - 1;
                if axis != -1 && axis != last {
                    return Err(bad(format!("softmax over axis {axis}; only the last axis is supported")));
                }
                let width = (*shape.last().unwrap_or(&1)).max(1);
                self.push(node, Step::Softmax { a, width }, shape)
            }
            (false, "Cast") => {
                let to = attr(node, "to").map(|a| a.i).unwrap_or(0);
                if to != i64::from(onnx::FLOAT) {
                    return Err(bad(format!("casts to data type {to}; only casts to float are supported")));
                }
                self.copy(node)
            }
            (false, "Flatten") => {
                let a = self.input(node, 0)?;
                let shape = self.shape(a).to_vec();
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(1);
                let axis = usize::try_from(if axis < 0 { axis + shape.len() as i64 } else { axis })
                    .ok()
                    .filter(|&a| a <= shape.len())
                    .ok_or_else(|| bad(format!("axis {axis} out of range")))?;
                let new = vec![shape[..axis].iter().product(), shape[axis..].iter().product()];
                self.push(node, Step::Copy { a }, new)
            }
            (false, "Reshape") => {
                let a = self.input(node, 0)?;
                let shape = self.shape(a).to_vec();
                let target = node
                    .input
                    .get(1)
                    .and_then(|n| self.initializers.get(n.as_str()))
                    .ok_or_else(|| bad("the target shape must be a constant".into()))?;
                let dims = target.int64s();
                let total = shape_len(&shape);
                let mut new = Vec::with_capacity(dims.len());
                let mut unknown = None;
                for (i, &d) in dims.iter().enumerate().take(4) {
                    match d {
                        -1 if unknown.is_none() => {
                            unknown = Some(i);
                            new.push(1);
                        }
                        0 => new.push(*shape.get(i).unwrap_or(&1)),
                        d if d > 0 => new.push(usize::try_from(d).unwrap_or(usize::MAX)),
                        _ => return Err(bad(format!("target shape {dims:?}"))),
                    }
                }
                if let Some(i) = unknown {
                    let known: usize = new.iter().product();
                    new[i] = total.checked_div(known).unwrap_or(0);
                }
                if shape_len(&new) != total || dims.len() > 4 {
                    return Err(bad(format!("cannot reshape {shape:?} to {dims:?}")));
                }
                self.push(node, Step::Copy { a }, new)
            }
            (false, "Concat") => {
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                let mut inputs = Vec::new();
                let mut shapes = Vec::new();
                for i in 0..node.input.len() {
                    let r = self.input(node, i)?;
                    shapes.push(self.shape(r).to_vec());
                    inputs.push(r);
                }
                let Some(first) = shapes.first().cloned() else { return Err(bad("has no inputs".into())) };
                let rank = first.len() as i64;
                let axis = usize::try_from(if axis < 0 { axis + rank } else { axis })
                    .ok()
                    .filter(|&a| a < first.len())
                    .ok_or_else(|| bad(format!("axis {axis} out of range")))?;
                let mut out = first.clone();
                out[axis] = 0;
                for s in &shapes {
                    if s.len() != first.len() || (0..s.len()).any(|d| d != axis && s[d] != first[d]) {
                        return Err(bad(format!("cannot concatenate {first:?} with {s:?}")));
                    }
                    out[axis] += s[axis];
                }
                let outer = first[..axis].iter().product();
                let widths = shapes.iter().map(|s| s[axis..].iter().product()).collect();
                self.push(node, Step::Concat { inputs, outer, widths }, out)
            }
            _ => Err(Self::unsupported(node)),
        }
    }
}
