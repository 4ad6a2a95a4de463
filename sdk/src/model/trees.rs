//! Tree ensembles: ONNX-ML's `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor` (what skl2onnx and onnxmltools export for
//! scikit-learn forests and boosting, LightGBM and XGBoost), flattened into
//! one array of nodes, checked at load (every child exists, no tree loops
//! back, no tree is deeper than [`MAX_DEPTH`]) so that scoring a row visits
//! at most one path per tree.
//!
//! The arithmetic follows onnxruntime's reference kernels
//! (`tree_ensemble_aggregator.h`): leaf weights summed in `f32` in tree
//! order, base values added after, the same binary-classifier conventions
//! (one weight column and two labels) and the same post-transforms, so
//! scores match onnxruntime's to float rounding.
//!
//! Explanations are path contributions (Saabas): each split on a row's path
//! is credited with how much it moved the tree's expected value. ONNX keeps
//! no training counts per node (`nodes_hitrates` is not written by the
//! converters), so a node's expected value is the unweighted mean of its
//! children's. The contributions and the bias add up to the raw score
//! (before the post-transform).

use super::onnx::{AttributeProto, DOUBLE, FLOAT, NodeProto};
use super::{MAX_TREE_NODES, ModelError};

/// The deepest path a tree may have.
pub const MAX_DEPTH: usize = 512;
/// The most classes or targets.
pub const MAX_COLUMNS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// A node, in 16 bytes: what a row's walk reads. A leaf's children are
/// itself, so walking on from a leaf stays there: several trees are walked
/// in step, each for the deepest one's number of steps, without a branch
/// on whether a tree has reached its leaf.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f32,
    /// The feature's index, with [`MISSING_YES`] set when a missing value
    /// (NaN) goes to the true child.
    feature: u32,
    yes: u32,
    no: u32,
}

const MISSING_YES: u32 = 1 << 31;
const FEATURE: u32 = !MISSING_YES;

/// How many trees are walked in step: their nodes are fetched from memory
/// together rather than one after another.
const LANES: usize = 8;

/// The comparison every branch node of an ensemble makes (the converters
/// use one: LightGBM and scikit-learn `<=`, XGBoost `<`), or, for any other
/// ensemble, each node's own (`Mixed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Leq,
    Lt,
    Gte,
    Gt,
    Mixed,
}

/// How scores become outputs (`post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone)]
enum Kind {
    Classifier { binary: bool, all_positive: bool },
    Regressor { aggregate: Aggregate },
}

/// A checked tree ensemble.
#[derive(Debug, Clone)]
pub struct Ensemble {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Trees walked together: (first tree, end, steps to reach every leaf).
    groups: Vec<(u32, u32, u32)>,
    compare: Compare,
    /// For `Compare::Mixed`, each node's mode and exact threshold (a
    /// double threshold that no float equals is compared as a double).
    mixed: Vec<(Mode, f64)>,
    /// A leaf's weights: (first, count) in `weights`, by node.
    leaf_weights: Vec<(u32, u32)>,
    /// When every leaf has one weight, all for one column (a binary
    /// classifier or a regressor, as exported): that column. Each leaf's
    /// weight is then also in its node's `threshold`, read where the walk
    /// ends rather than from another array.
    inline: Option<u32>,
    weights: Vec<(u32, f32)>,
    columns: usize,
    base: Vec<f32>,
    post: Post,
    kind: Kind,
    /// Features read: one more than the largest feature index.
    pub features: usize,
    /// Each node's expected value for [`Ensemble::explained_column`].
    expected: Vec<f32>,
}

/// One row's path contributions: `bias + contributions.sum()` is the raw
/// score of the explained column.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub bias: f32,
    pub per_feature: Vec<f32>,
}

struct Attributes<'a>(&'a [AttributeProto], &'a str);

impl<'a> Attributes<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    fn ints(&self, name: &str) -> &'a [i64] {
        self.get(name).map(|a| a.ints.as_slice()).unwrap_or_default()
    }
    /// A float list, or its `_as_tensor` form (float or double).
    fn floats(&self, name: &str) -> Result<Vec<f64>, ModelError> {
        if let Some(a) = self.get(name)
            && !a.floats.is_empty()
        {
            return Ok(a.floats.iter().map(|&f| f64::from(f)).collect());
        }
        let Some(t) = self.get(&format!("{name}_as_tensor")).and_then(|a| a.t.as_ref()) else { return Ok(Vec::new()) };
        match t.data_type {
            FLOAT => super::graph::float_data(t, self.1).map(|v| v.into_iter().map(f64::from).collect()),
            DOUBLE => Ok(t.doubles()),
            other => Err(self.bad(&format!("`{name}_as_tensor` has data type {other}; float or double expected"))),
        }
    }
    fn strings(&self, name: &str) -> Vec<&'a [u8]> {
        self.get(name).map(|a| a.strings.iter().map(Vec::as_slice).collect()).unwrap_or_default()
    }
    fn text(&self, name: &str) -> Option<&'a [u8]> {
        self.get(name).map(|a| a.s.as_slice())
    }
    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }
    fn bad(&self, problem: &str) -> ModelError {
        ModelError::Invalid(format!("node `{}`: {problem}", self.1))
    }
}

fn index(value: i64, len: usize) -> Option<usize> {
    usize::try_from(value).ok().filter(|&v| v < len)
}

impl Ensemble {
    /// Reads and checks a `TreeEnsembleClassifier` or
    /// `TreeEnsembleRegressor` node.
    pub fn from_node(node: &NodeProto, classifier: bool) -> Result<Ensemble, ModelError> {
        let attrs = Attributes(&node.attribute, &node.name);
        let tree_ids = attrs.ints("nodes_treeids");
        let node_ids = attrs.ints("nodes_nodeids");
        let features = attrs.ints("nodes_featureids");
        let modes = attrs.strings("nodes_modes");
        let values = attrs.floats("nodes_values")?;
        let yes = attrs.ints("nodes_truenodeids");
        let no = attrs.ints("nodes_falsenodeids");
        let missing = attrs.ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if n == 0 {
            return Err(attrs.bad("the ensemble has no nodes"));
        }
        if n > MAX_TREE_NODES {
            return Err(attrs.bad(&format!("{n} tree nodes; a model may have at most {MAX_TREE_NODES}")));
        }
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", yes.len()),
            ("nodes_falsenodeids", no.len()),
        ] {
            if len != n {
                return Err(attrs.bad(&format!("`{name}` has {len} entries, `nodes_treeids` {n}")));
            }
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(attrs.bad("`nodes_missing_value_tracks_true` does not have one entry per node"));
        }
        // Nodes are found by (tree, node id); ids are looked up, not trusted.
        let mut by_id: std::collections::HashMap<(i64, i64), u32> = std::collections::HashMap::with_capacity(n);
        let mut roots = Vec::new();
        for i in 0..n {
            if by_id.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
                return Err(attrs.bad(&format!("tree {} lists node {} twice", tree_ids[i], node_ids[i])));
            }
            // As onnxruntime: a tree's first listed node is its root.
            if i == 0 || tree_ids[i] != tree_ids[i - 1] {
                roots.push(i as u32);
            }
        }
        let mut nodes = Vec::with_capacity(n);
        let mut mixed = Vec::with_capacity(n);
        let mut max_feature = 0usize;
        for i in 0..n {
            let mode = match modes[i] {
                b"BRANCH_LEQ" => Mode::Leq,
                b"BRANCH_LT" => Mode::Lt,
                b"BRANCH_GTE" => Mode::Gte,
                b"BRANCH_GT" => Mode::Gt,
                b"BRANCH_EQ" => Mode::Eq,
                b"BRANCH_NEQ" => Mode::Neq,
                b"LEAF" => Mode::Leaf,
                other => {
                    let shown = String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned();
                    return Err(attrs.bad(&format!("unknown node mode {shown:?}")));
                }
            };
            let (mut y, mut f, mut feature) = (0, 0, 0);
            if mode != Mode::Leaf {
                let child = |id: i64, which: &str| {
                    by_id.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                        attrs.bad(&format!(
                            "tree {} node {}: {which} child {id} does not exist",
                            tree_ids[i], node_ids[i]
                        ))
                    })
                };
                y = child(yes[i], "true")?;
                f = child(no[i], "false")?;
                feature = usize::try_from(features[i])
                    .ok()
                    .filter(|&f| f < super::MAX_FEATURES)
                    .ok_or_else(|| attrs.bad(&format!("feature index {} out of range", features[i])))?;
                max_feature = max_feature.max(feature + 1);
            }
            let missing_yes = if missing.get(i).is_some_and(|&m| m != 0) { MISSING_YES } else { 0 };
            let (y, f) = if mode == Mode::Leaf { (i as u32, i as u32) } else { (y, f) };
            nodes.push(Node { threshold: values[i] as f32, feature: feature as u32 | missing_yes, yes: y, no: f });
            mixed.push((mode, values[i]));
        }
        // One comparison for all, if every branch node makes it on a
        // threshold a float holds exactly (a float row compared with it
        // then decides as the double would).
        let branch_modes: std::collections::BTreeSet<Mode> =
            mixed.iter().filter(|(m, _)| *m != Mode::Leaf).map(|(m, _)| *m).collect();
        let exact = mixed.iter().all(|&(m, t)| m == Mode::Leaf || f64::from(t as f32) == t);
        let compare = match (branch_modes.len(), branch_modes.first()) {
            (0, _) | (1, Some(Mode::Leq)) if exact => Compare::Leq,
            (1, Some(Mode::Lt)) if exact => Compare::Lt,
            (1, Some(Mode::Gte)) if exact => Compare::Gte,
            (1, Some(Mode::Gt)) if exact => Compare::Gt,
            _ => Compare::Mixed,
        };
        if compare != Compare::Mixed {
            mixed = Vec::new();
        }
        // Leaf weights.
        let prefix = if classifier { "class" } else { "target" };
        let w_trees = attrs.ints(&format!("{prefix}_treeids"));
        let w_nodes = attrs.ints(&format!("{prefix}_nodeids"));
        let w_ids = attrs.ints(&format!("{prefix}_ids"));
        let w_values = attrs.floats(&format!("{prefix}_weights"))?;
        if [w_nodes.len(), w_ids.len(), w_values.len()].iter().any(|&l| l != w_trees.len()) {
            return Err(attrs.bad(&format!("the `{prefix}_*` attributes differ in length")));
        }
        let columns = if classifier {
            let ints = attrs.ints("classlabels_int64s").len();
            let strings = attrs.strings("classlabels_strings").len();
            ints.max(strings)
        } else {
            usize::try_from(attrs.int("n_targets").unwrap_or(1)).unwrap_or(0)
        };
        if classifier && columns < 2 {
            return Err(attrs.bad(&format!("a classifier with {columns} class labels; it needs at least two")));
        }
        if columns == 0 || columns > MAX_COLUMNS {
            return Err(attrs.bad(&format!("{columns} classes or targets; between 1 and {MAX_COLUMNS} are supported")));
        }
        let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        let mut columns_used = std::collections::BTreeSet::new();
        let mut all_positive = true;
        for k in 0..w_trees.len() {
            let Some(&leaf) = by_id.get(&(w_trees[k], w_nodes[k])) else {
                return Err(
                    attrs.bad(&format!("a weight names tree {} node {}, which does not exist", w_trees[k], w_nodes[k]))
                );
            };
            let column = index(w_ids[k], columns)
                .ok_or_else(|| attrs.bad(&format!("a weight names column {} of {columns}", w_ids[k])))?;
            columns_used.insert(column);
            all_positive &= w_values[k] >= 0.0;
            per_leaf[leaf as usize].push((column as u32, w_values[k] as f32));
        }
        let mut weights = Vec::with_capacity(w_trees.len());
        let mut leaf_weights = Vec::with_capacity(n);
        let mut inline = columns_used.first().map(|&c| c as u32).filter(|_| columns_used.len() == 1);
        for (i, w) in per_leaf.into_iter().enumerate() {
            let is_leaf = nodes[i].yes == i as u32;
            leaf_weights.push(if is_leaf { (weights.len() as u32, w.len() as u32) } else { (0, 0) });
            if is_leaf {
                if let [(_, weight)] = w[..] {
                    nodes[i].threshold = weight;
                    nodes[i].feature = 0;
                } else {
                    inline = None;
                }
                weights.extend(w);
            }
        }
        let base: Vec<f32> = attrs.floats("base_values")?.into_iter().map(|v| v as f32).collect();
        if !base.is_empty() && base.len() != columns && !(classifier && columns == 2 && base.len() == 1) {
            return Err(attrs.bad(&format!("{} base values for {columns} columns", base.len())));
        }
        let post = match attrs.text("post_transform").unwrap_or(b"NONE") {
            b"NONE" => Post::None,
            b"LOGISTIC" => Post::Logistic,
            b"SOFTMAX" => Post::Softmax,
            b"SOFTMAX_ZERO" => Post::SoftmaxZero,
            other => {
                let shown = String::from_utf8_lossy(&other[..other.len().min(32)]).into_owned();
                return Err(ModelError::Unsupported(format!("node `{}`: post_transform {shown:?}", node.name)));
            }
        };
        let kind = if classifier {
            Kind::Classifier { binary: columns == 2 && columns_used.len() == 1, all_positive }
        } else {
            let aggregate = match attrs.text("aggregate_function").unwrap_or(b"SUM") {
                b"SUM" => Aggregate::Sum,
                b"AVERAGE" => Aggregate::Average,
                b"MIN" => Aggregate::Min,
                b"MAX" => Aggregate::Max,
                _ => return Err(attrs.bad("unknown aggregate_function")),
            };
            Kind::Regressor { aggregate }
        };
        let mut ensemble = Ensemble {
            nodes,
            roots,
            groups: Vec::new(),
            compare,
            mixed,
            leaf_weights,
            inline,
            weights,
            columns,
            base,
            post,
            kind,
            features: max_feature,
            expected: Vec::new(),
        };
        let depths = ensemble.check_trees(&node.name)?;
        ensemble.groups = (0..depths.len())
            .step_by(LANES)
            .map(|start| {
                let end = (start + LANES).min(depths.len());
                (start as u32, end as u32, depths[start..end].iter().copied().max().unwrap_or(0))
            })
            .collect();
        ensemble.expected = ensemble.expected_values();
        Ok(ensemble)
    }

    /// Every tree is a tree: from its root, no node is reached twice and
    /// no path is deeper than [`MAX_DEPTH`]. Returns each tree's depth: the
    /// steps from its root to its deepest leaf.
    fn check_trees(&self, name: &str) -> Result<Vec<u32>, ModelError> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<(u32, usize)> = Vec::new();
        let mut depths = Vec::with_capacity(self.roots.len());
        for (t, &root) in self.roots.iter().enumerate() {
            let mut deepest = 0;
            stack.push((root, 1));
            while let Some((i, depth)) = stack.pop() {
                if std::mem::replace(&mut seen[i as usize], true) {
                    return Err(ModelError::Invalid(format!(
                        "node `{name}`: tree {t} reaches one of its nodes twice (a loop or a shared node)"
                    )));
                }
                if depth > MAX_DEPTH {
                    return Err(ModelError::Invalid(format!(
                        "node `{name}`: tree {t} is deeper than {MAX_DEPTH} levels"
                    )));
                }
                deepest = deepest.max(depth - 1);
                let node = self.nodes[i as usize];
                if !is_leaf(i, &node) {
                    stack.push((node.yes, depth + 1));
                    stack.push((node.no, depth + 1));
                }
            }
            depths.push(deepest as u32);
        }
        Ok(depths)
    }

    /// The column explained by [`Ensemble::contributions`]: the single
    /// weight column of a binary classifier, otherwise the last.
    fn explained_column(&self) -> u32 {
        match self.kind {
            Kind::Classifier { binary: true, .. } => self.weights.first().map(|w| w.0).unwrap_or(0),
            _ => (self.columns - 1) as u32,
        }
    }

    /// Each node's expected value for the explained column: a leaf's
    /// weight, an inner node's the mean of its children's.
    fn expected_values(&self) -> Vec<f32> {
        let column = self.explained_column();
        let mut expected = vec![0f32; self.nodes.len()];
        // Children before parents: a post-order walk of each tree.
        let mut stack: Vec<(u32, bool)> = Vec::new();
        for &root in &self.roots {
            stack.push((root, false));
            while let Some((i, children_done)) = stack.pop() {
                let node = self.nodes[i as usize];
                if is_leaf(i, &node) {
                    expected[i as usize] = self.leaf(i).iter().filter(|w| w.0 == column).map(|w| w.1).sum();
                } else if children_done {
                    expected[i as usize] = (expected[node.yes as usize] + expected[node.no as usize]) / 2.0;
                } else {
                    stack.push((i, true));
                    stack.push((node.yes, false));
                    stack.push((node.no, false));
                }
            }
        }
        expected
    }

    /// A leaf's weights.
    fn leaf(&self, i: u32) -> &[(u32, f32)] {
        let (start, len) = self.leaf_weights[i as usize];
        &self.weights[start as usize..(start + len) as usize]
    }

    /// The node a row goes to from node `i` (a leaf stays).
    #[inline(always)]
    fn step<const C: u8>(&self, i: u32, x: &[f32]) -> u32 {
        let node = &self.nodes[i as usize];
        let v = x[(node.feature & FEATURE) as usize];
        let t = node.threshold;
        let yes = match C {
            LEQ => v <= t,
            LT => v < t,
            GTE => v >= t,
            GT => v > t,
            _ => {
                let (mode, t) = self.mixed[i as usize];
                let v = f64::from(v);
                match mode {
                    Mode::Leq => v <= t,
                    Mode::Lt => v < t,
                    Mode::Gte => v >= t,
                    Mode::Gt => v > t,
                    Mode::Eq => v == t,
                    Mode::Neq => v != t,
                    Mode::Leaf => true,
                }
            }
        };
        let yes = yes | (v.is_nan() & (node.feature & MISSING_YES != 0));
        if yes { node.yes } else { node.no }
    }

    /// Calls `f` with the leaf each tree reaches, in tree order.
    #[inline]
    fn leaves(&self, x: &[f32], f: impl FnMut(u32)) {
        match self.compare {
            Compare::Leq => self.walk::<LEQ>(x, f),
            Compare::Lt => self.walk::<LT>(x, f),
            Compare::Gte => self.walk::<GTE>(x, f),
            Compare::Gt => self.walk::<GT>(x, f),
            Compare::Mixed => self.walk::<MIXED>(x, f),
        }
    }

    fn walk<const C: u8>(&self, x: &[f32], mut f: impl FnMut(u32)) {
        let mut lanes = [0u32; LANES];
        for &(start, end, depth) in &self.groups {
            let trees = &self.roots[start as usize..end as usize];
            let lanes = &mut lanes[..trees.len()];
            lanes.copy_from_slice(trees);
            for _ in 0..depth {
                for lane in lanes.iter_mut() {
                    *lane = self.step::<C>(*lane, x);
                }
            }
            lanes.iter().for_each(|&leaf| f(leaf));
        }
    }

    /// The number of output values: classes or targets.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Scores one row (`x` holds at least [`Ensemble::features`] values)
    /// into `out` (one value per column), as onnxruntime does.
    pub fn score(&self, x: &[f32], out: &mut Vec<f32>) {
        let columns = self.columns;
        let mut scores = vec![0f32; columns];
        let mut has = vec![false; columns];
        if let (Some(c), Kind::Classifier { .. } | Kind::Regressor { aggregate: Aggregate::Sum | Aggregate::Average }) =
            (self.inline, &self.kind)
        {
            let c = c as usize;
            let mut sum = 0f32;
            self.leaves(x, |leaf| sum += self.nodes[leaf as usize].threshold);
            scores[c] = sum;
            has[c] = true;
        } else {
            self.leaves(x, |leaf| {
                for &(c, w) in self.leaf(leaf) {
                    let c = c as usize;
                    match self.kind {
                        Kind::Regressor { aggregate: Aggregate::Min } => {
                            scores[c] = if has[c] { scores[c].min(w) } else { w };
                        }
                        Kind::Regressor { aggregate: Aggregate::Max } => {
                            scores[c] = if has[c] { scores[c].max(w) } else { w };
                        }
                        _ => scores[c] += w,
                    }
                    has[c] = true;
                }
            });
        }
        out.clear();
        match self.kind {
            Kind::Regressor { aggregate } => {
                let trees = self.roots.len() as f32;
                for (c, s) in scores.iter_mut().enumerate() {
                    if aggregate == Aggregate::Average {
                        *s /= trees;
                    }
                    if let Some(b) = self.base.get(c) {
                        *s += b;
                    }
                }
                write_scores(&mut scores, self.post, out, None);
            }
            Kind::Classifier { binary, all_positive } => {
                if columns > 2 {
                    for (c, b) in self.base.iter().enumerate() {
                        scores[c] += b;
                        has[c] = true;
                    }
                    write_scores(&mut scores, self.post, out, None);
                    return;
                }
                // Two classes: onnxruntime's conventions.
                if self.base.len() == 2 {
                    if has[1] {
                        scores[1] = self.base[1] + scores[0];
                        scores[0] = -scores[1];
                    } else {
                        scores[1] += self.base[1];
                        scores[0] += self.base[0];
                    }
                } else {
                    if let Some(b) = self.base.first() {
                        scores[0] += b;
                    }
                    if !has[1] {
                        scores.pop();
                    }
                }
                let positive = if scores.len() == 2 && has[1] {
                    scores[1]
                } else if has[0] {
                    scores[0]
                } else {
                    0.0
                };
                let add_second = if binary {
                    Some(if all_positive {
                        if positive > 0.5 { 0 } else { 1 }
                    } else if positive > 0.0 {
                        2
                    } else {
                        3
                    })
                } else {
                    None
                };
                write_scores(&mut scores, self.post, out, add_second);
                if out.len() == 1 {
                    out.push(0.0);
                }
            }
        }
    }

    /// The path contributions of one row (see the module docs).
    pub fn contributions(&self, x: &[f32]) -> Contributions {
        let mut per_feature = vec![0f32; self.features];
        let mut bias = 0f32;
        for &root in &self.roots {
            bias += self.expected[root as usize];
            let mut i = root;
            loop {
                let next = match self.compare {
                    Compare::Leq => self.step::<LEQ>(i, x),
                    Compare::Lt => self.step::<LT>(i, x),
                    Compare::Gte => self.step::<GTE>(i, x),
                    Compare::Gt => self.step::<GT>(i, x),
                    Compare::Mixed => self.step::<MIXED>(i, x),
                };
                if next == i {
                    break;
                }
                let feature = (self.nodes[i as usize].feature & FEATURE) as usize;
                per_feature[feature] += self.expected[next as usize] - self.expected[i as usize];
                i = next;
            }
        }
        if let Kind::Regressor { aggregate: Aggregate::Average } = self.kind {
            let trees = self.roots.len() as f32;
            bias /= trees;
            per_feature.iter_mut().for_each(|c| *c /= trees);
        }
        if let Some(b) =
            self.base.get(self.explained_column() as usize).or(self.base.first().filter(|_| self.base.len() == 1))
        {
            bias += b;
        }
        Contributions { bias, per_feature }
    }

    /// Tree steps a row takes: each group's trees, for its depth.
    pub fn cost(&self) -> usize {
        self.groups.iter().map(|&(start, end, depth)| (end - start) as usize * depth as usize).sum()
    }
}

const LEQ: u8 = 0;
const LT: u8 = 1;
const GTE: u8 = 2;
const GT: u8 = 3;
const MIXED: u8 = 4;

/// Whether node `i` is a leaf (its children are itself).
fn is_leaf(i: u32, node: &Node) -> bool {
    node.yes == i && node.no == i
}

/// onnxruntime's `ComputeLogistic`.
fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

fn softmax(scores: &mut [f32], zero: bool) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        if zero && *s == 0.0 {
            continue;
        }
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        if !(zero && *s == 0.0) {
            *s /= sum;
        }
    }
}

/// onnxruntime's `write_scores`: the post-transform, and for a binary
/// classifier with one weight column the second class made up from the
/// first (`add_second`, onnxruntime's `add_second_class`).
fn write_scores(scores: &mut Vec<f32>, post: Post, out: &mut Vec<f32>, add_second: Option<u8>) {
    if scores.len() == 1
        && let Some(kind) = add_second
    {
        let s = scores[0];
        match kind {
            0 | 1 => {
                scores.clear();
                scores.extend([1.0 - s, s]);
            }
            _ if post == Post::Logistic => {
                out.extend([logistic(-s), logistic(s)]);
                return;
            }
            _ => {
                scores.clear();
                scores.extend([-s, s]);
            }
        }
    }
    match post {
        Post::None => {}
        Post::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        Post::Softmax => softmax(scores, false),
        Post::SoftmaxZero => softmax(scores, true),
    }
    out.extend_from_slice(scores);
}
