//! Machine-learning models in a rule: an ONNX file in the rule's package,
//! scored inside the rule's sandbox (feature `model`).
//!
//! ```no_run
//! use std::time::Duration;
//! use weir_sdk::prelude::*;
//!
//! const HOUR: Duration = Duration::from_secs(3600);
//!
//! pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
//!     let features = [tx.amount.minor_units as f32, ctx.window_count("tx", HOUR) as f32];
//!     let model = ctx.model()?;
//!     let score = model.score(&features)?;
//!     if score < 0.9 {
//!         return Ok(Verdict::pass());
//!     }
//!     Ok(Verdict::suspect("MODEL", "the model scores this transaction as fraud")
//!         .with_model(model, &features, &["amount", "count-1h"], score))
//! }
//! ```
//!
//! The package names the file (`[model] file = "model.onnx"` in the
//! manifest); its hash is part of the rule's version and the package's
//! signature covers it, so a retrained model deploys, shadows and rolls
//! back like any change to a rule, without recompiling the rule.
//!
//! What runs ([`Model::load`] checks it all before the first row):
//! - tree ensembles as skl2onnx and onnxmltools export them (ONNX-ML
//!   `TreeEnsembleClassifier` and `TreeEnsembleRegressor`: scikit-learn
//!   forests and gradient boosting, LightGBM, XGBoost), with `ZipMap` read
//!   as the probabilities in class order and `Scaler`;
//! - small networks: `Gemm`, `MatMul`, `Add`, `Sub`, `Mul`, `Div`, `Relu`,
//!   `Sigmoid`, `Tanh`, `Exp`, `Abs`, `Neg`, `Softmax`, `Identity`, `Cast`
//!   to float, `Reshape`, `Flatten`, `Concat`.
//!
//! Only the nodes the scored output needs are compiled (a classifier's
//! label branch is not), so an operator the runner lacks matters only if
//! the score depends on it. The scored output is the graph's first float
//! output (a classifier's probabilities; a `ZipMap` of them counts).
//!
//! A model is untrusted input, read inside the sandbox: its size, the
//! number of nodes, every tensor's size, tree depth and the operations a
//! row costs are bounded ([`MAX_MODEL_BYTES`], [`graph::MAX_COST`] and the
//! others), cycles and dangling references are refused at load, and a row
//! is scored without any allocation that the model's size did not fix at
//! load. In a rule, loading runs on its own fuel grant (the host's
//! `limits.model_fuel`) and scoring on the rule's per-evaluation fuel; the
//! memory cap covers both.

mod graph;
mod onnx;
mod trees;

use std::cell::RefCell;

use crate::limits::MODEL_ERROR_PREFIXES;

pub use trees::Contributions;

/// The largest model file read.
pub const MAX_MODEL_BYTES: usize = 64 << 20;
/// The most features a model may take.
pub const MAX_FEATURES: usize = crate::limits::MAX_SCORED_FEATURES;
/// The most tree nodes in one ensemble.
pub const MAX_TREE_NODES: usize = 4_000_000;
pub use graph::{MAX_COST, MAX_ELEMENTS, MAX_GRAPH_NODES};
pub use trees::MAX_DEPTH;

/// Why a model cannot be loaded or scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// Not an ONNX model, or an ONNX model that contradicts itself.
    Invalid(String),
    /// Valid ONNX that uses what weir does not run.
    Unsupported(String),
    /// Over one of the bounds.
    TooLarge(String),
    /// A row of the wrong length.
    Row { expected: usize, found: usize },
    /// The rule's package has no model.
    Missing,
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Invalid(m) => write!(f, "{}{m}", MODEL_ERROR_PREFIXES[0]),
            ModelError::Unsupported(m) => write!(f, "{}{m}", MODEL_ERROR_PREFIXES[1]),
            ModelError::TooLarge(m) => write!(f, "{}{m}", MODEL_ERROR_PREFIXES[2]),
            ModelError::Row { expected, found } => {
                write!(f, "the model takes {expected} features; the rule gave {found}")
            }
            ModelError::Missing => f.write_str(
                "the rule's package has no model: name its ONNX file in the manifest (`[model] file = \"model.onnx\"`)",
            ),
        }
    }
}

impl std::error::Error for ModelError {}

/// How many of a model's top contributing features
/// [`crate::Verdict::with_model`] adds as evidence.
pub const EXPLAINED_FEATURES: usize = 3;

impl crate::Verdict {
    /// Adds the model's score (`model.score`) and, for a tree model, the
    /// [`EXPLAINED_FEATURES`] features that moved it most (`model.NAME`,
    /// each with its contribution to the raw score, signed) as evidence.
    /// `names` names the row's features in order (evidence names: ASCII
    /// letters, digits, `_`, `.` and `-`); a feature without a name shows
    /// as `model.fN`.
    pub fn with_model(mut self, model: &Model, row: &[f32], names: &[&str], score: f32) -> crate::Verdict {
        self = self.with("model.score", format_args!("{score:.4}"));
        for (i, contribution) in model.top_contributions(row, EXPLAINED_FEATURES) {
            let name = match names.get(i) {
                Some(n) => format!("model.{n}"),
                None => format!("model.f{i}"),
            };
            self = self.with(&name, format_args!("{contribution:+.4}"));
        }
        self
    }
}

/// A loaded, checked model.
#[derive(Debug, Clone)]
pub struct Model {
    graph: graph::Graph,
    scratch: RefCell<Vec<Vec<f32>>>,
}

impl Model {
    /// Reads and checks an ONNX model (see the module docs for what is
    /// supported and bounded).
    pub fn load(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(ModelError::TooLarge(format!("{} bytes; at most {MAX_MODEL_BYTES}", bytes.len())));
        }
        let model: onnx::ModelProto = prost::Message::decode(bytes)
            .map_err(|e| ModelError::Invalid(format!("not an ONNX model (protobuf: {e})")))?;
        let graph = model.graph.as_ref().ok_or_else(|| ModelError::Invalid("the model has no graph".into()))?;
        if model.ir_version < 3 {
            return Err(ModelError::Unsupported(format!(
                "IR version {}; ONNX files of IR version 3 or later are read",
                model.ir_version
            )));
        }
        let output = scored_output(graph)?;
        let graph = graph::Graph::compile(graph, &output)?;
        Ok(Model { graph, scratch: RefCell::new(Vec::new()) })
    }

    /// How many features a row has.
    pub fn features(&self) -> usize {
        self.graph.inputs
    }

    /// How many values the scored output has: classes, targets or units.
    pub fn outputs(&self) -> usize {
        self.graph.output_len()
    }

    /// Operations one row costs at most (multiply-adds, elements and tree
    /// nodes), as counted at load.
    pub fn cost(&self) -> usize {
        self.graph.cost
    }

    /// Scores one row: the scored output's values (for a classifier, each
    /// class's probability in class order), handed to `f`.
    pub fn run<R>(&self, row: &[f32], f: impl FnOnce(&[f32]) -> R) -> Result<R, ModelError> {
        if row.len() != self.graph.inputs {
            return Err(ModelError::Row { expected: self.graph.inputs, found: row.len() });
        }
        let mut scratch = self.scratch.borrow_mut();
        Ok(f(self.graph.run(row, &mut scratch)))
    }

    /// The score of one row: the probability of the second class for a
    /// two-class classifier, the value for a single-output model.
    pub fn score(&self, row: &[f32]) -> Result<f32, ModelError> {
        let outputs = self.outputs();
        self.run(row, |out| match outputs {
            2 => Ok(out[1]),
            1 => Ok(out[0]),
            n => Err(ModelError::Unsupported(format!(
                "the model has {n} outputs; read them with `Model::run` rather than `score`"
            ))),
        })?
    }

    /// Why a tree model scored a row as it did: each feature's path
    /// contribution to the raw score (see [`Contributions`]). `None` for a
    /// model that is not a tree ensemble over the row's features.
    pub fn contributions(&self, row: &[f32]) -> Option<Contributions> {
        let ensemble = &self.graph.ensembles[self.graph.explained?];
        (row.len() == self.graph.inputs).then(|| ensemble.contributions(row))
    }

    /// The `k` features that moved a row's score most, largest first:
    /// (feature index, contribution).
    pub fn top_contributions(&self, row: &[f32], k: usize) -> Vec<(usize, f32)> {
        let Some(c) = self.contributions(row) else { return Vec::new() };
        let mut top: Vec<(usize, f32)> = c.per_feature.into_iter().enumerate().filter(|(_, v)| *v != 0.0).collect();
        top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        top.truncate(k);
        top
    }
}

/// The graph's first float output; a `ZipMap`'s output (a sequence of
/// maps) counts, and is read as its probabilities.
fn scored_output(graph: &onnx::GraphProto) -> Result<String, ModelError> {
    for output in &graph.output {
        let elem = output.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).map(|t| t.elem_type);
        let zipmap = graph.node.iter().any(|n| n.op_type == "ZipMap" && n.output.first() == Some(&output.name));
        if elem == Some(onnx::FLOAT) || zipmap {
            return Ok(output.name.clone());
        }
    }
    Err(ModelError::Unsupported("the model has no float output to score".into()))
}

#[cfg(test)]
mod tests;
