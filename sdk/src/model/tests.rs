//! The model reader on models built here, field by field: scores,
//! onnxruntime's binary conventions, missing values, explanations, and
//! every refusal (the parity with onnxruntime itself is tested on real
//! exported models in the host's `models` tests).

use prost::Message as _;

use super::onnx::*;
use super::{Model, ModelError};

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}
fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 6, floats: v.to_vec(), ..Default::default() }
}
fn strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 8,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}
fn text(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

fn input(features: i64) -> ValueInfo {
    ValueInfo {
        name: "input".into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: FLOAT,
                shape: Some(TensorShape {
                    dim: vec![
                        Dimension { dim_value: None, dim_param: Some("N".into()) },
                        Dimension { dim_value: Some(features), dim_param: None },
                    ],
                }),
            }),
        }),
    }
}

fn output(name: &str, elem_type: i32) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TensorType { elem_type, shape: None }) }),
    }
}

fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}-1"),
        op_type: op.into(),
        domain: domain.into(),
        attribute,
    }
}

fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>, features: i64, outputs: Vec<ValueInfo>) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetId { domain: String::new(), version: 15 }],
        producer_name: "weir-tests".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer,
            input: vec![input(features)],
            output: outputs,
        }),
    }
    .encode_to_vec()
}

/// Two trees over two features: tree 0 splits f0 at 0.5 (1.0 or 3.0),
/// tree 1 splits f1 at 2 (-1.0 or 0.5; a missing f1 goes left).
fn trees(classifier: bool, post: &str) -> NodeProto {
    let prefix = if classifier { "class" } else { "target" };
    let mut attrs = vec![
        ints("nodes_treeids", &[0, 0, 0, 1, 1, 1]),
        ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2]),
        ints("nodes_featureids", &[0, 0, 0, 1, 0, 0]),
        strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]),
        floats("nodes_values", &[0.5, 0.0, 0.0, 2.0, 0.0, 0.0]),
        ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0]),
        ints("nodes_missing_value_tracks_true", &[0, 0, 0, 1, 0, 0]),
        ints(&format!("{prefix}_treeids"), &[0, 0, 1, 1]),
        ints(&format!("{prefix}_nodeids"), &[1, 2, 1, 2]),
        ints(&format!("{prefix}_ids"), &[0, 0, 0, 0]),
        floats(&format!("{prefix}_weights"), &[1.0, 3.0, -1.0, 0.5]),
        text("post_transform", post),
    ];
    if classifier {
        attrs.push(ints("classlabels_int64s", &[0, 1]));
        node("TreeEnsembleClassifier", "ai.onnx.ml", &["input"], &["label", "probabilities"], attrs)
    } else {
        attrs.push(int("n_targets", 1));
        node("TreeEnsembleRegressor", "ai.onnx.ml", &["input"], &["variable"], attrs)
    }
}

fn logistic(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

#[test]
fn a_regressor_sums_its_trees_and_explains_each_split() {
    let bytes = model(vec![trees(false, "NONE")], vec![], 2, vec![output("variable", FLOAT)]);
    let m = Model::load(&bytes).unwrap();
    assert_eq!((m.features(), m.outputs()), (2, 1));
    assert_eq!(m.score(&[0.2, 1.0]).unwrap(), 0.0, "1.0 + -1.0");
    assert_eq!(m.score(&[0.9, 5.0]).unwrap(), 3.5);
    assert_eq!(m.score(&[0.5, 2.0]).unwrap(), 1.5, "0.5 <= 0.5 goes left; 2 < 2 does not");
    assert_eq!(m.score(&[0.9, f32::NAN]).unwrap(), 2.0, "a missing f1 tracks true in tree 1");
    assert_eq!(m.score(&[f32::NAN, 5.0]).unwrap(), 3.5, "a missing f0 does not track true in tree 0");
    // Expected values: tree 0 (1+3)/2 = 2, tree 1 (-1+0.5)/2 = -0.25.
    let c = m.contributions(&[0.9, 5.0]).unwrap();
    assert_eq!(c.bias, 1.75);
    assert_eq!(c.per_feature, vec![1.0, 0.75]);
    assert_eq!(c.bias + c.per_feature.iter().sum::<f32>(), m.score(&[0.9, 5.0]).unwrap(), "they add up to the score");
    assert_eq!(m.top_contributions(&[0.2, 5.0], 1), vec![(0, -1.0)]);
}

#[test]
fn a_binary_classifier_with_one_weight_column_follows_onnxruntime() {
    // LightGBM's form: one column, the logistic, labels 0 and 1.
    let bytes =
        model(vec![trees(true, "LOGISTIC")], vec![], 2, vec![output("label", INT64), output("probabilities", FLOAT)]);
    let m = Model::load(&bytes).unwrap();
    assert_eq!(m.outputs(), 2);
    let p = m.run(&[0.9, 5.0], |out| out.to_vec()).unwrap();
    assert!((p[1] - logistic(3.5)).abs() < 1e-7 && (p[0] - logistic(-3.5)).abs() < 1e-7, "{p:?}");
    assert_eq!(m.score(&[0.9, 5.0]).unwrap(), p[1]);
    // Without a transform and all weights positive, onnxruntime reads the
    // column as the second class's probability.
    let mut positive = trees(true, "NONE");
    for a in &mut positive.attribute {
        if a.name == "class_weights" {
            a.floats = vec![0.1, 0.3, 0.2, 0.4];
        }
    }
    let m = Model::load(&model(vec![positive], vec![], 2, vec![output("probabilities", FLOAT)])).unwrap();
    let p = m.run(&[0.9, 5.0], |out| out.to_vec()).unwrap();
    assert!((p[1] - 0.7).abs() < 1e-6 && (p[0] - 0.3).abs() < 1e-6, "{p:?}");
}

#[test]
fn a_small_network_runs_gemm_relu_and_sigmoid() {
    let tensor = |name: &str, dims: &[i64], v: &[f32]| TensorProto {
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: v.to_vec(),
        name: name.into(),
        ..Default::default()
    };
    let nodes = vec![
        node("Gemm", "", &["input", "w1", "b1"], &["h"], vec![]),
        node("Relu", "", &["h"], &["r"], vec![]),
        node("MatMul", "", &["r", "w2"], &["z"], vec![]),
        node("Sigmoid", "", &["z"], &["p"], vec![]),
        node("Loop", "", &["p"], &["unused"], vec![]),
    ];
    let init = vec![
        tensor("w1", &[2, 2], &[1.0, -1.0, 2.0, 0.5]),
        tensor("b1", &[2], &[0.0, 1.0]),
        tensor("w2", &[2, 1], &[0.5, -0.25]),
    ];
    let m = Model::load(&model(nodes, init, 2, vec![output("p", FLOAT)])).unwrap();
    // h = [1*1 + 2*2, 1*-1 + 2*0.5 + 1] = [5, 1]; z = 2.5 - 0.25.
    assert!((m.score(&[1.0, 2.0]).unwrap() - logistic(2.25)).abs() < 1e-7);
    assert_eq!(m.contributions(&[1.0, 2.0]), None, "a network has no path contributions");
    assert_eq!(m.score(&[1.0]).unwrap_err(), ModelError::Row { expected: 2, found: 1 });
}

fn refused(bytes: &[u8]) -> String {
    Model::load(bytes).unwrap_err().to_string()
}

#[test]
fn broken_and_hostile_models_are_refused_with_the_reason() {
    assert!(refused(b"\x08\x96\x01garbage").starts_with("invalid model: not an ONNX model"), "{}", refused(b"x"));
    let out = || vec![output("variable", FLOAT)];
    // A tree whose child is its own root: a loop.
    let mut looped = trees(false, "NONE");
    looped.attribute[5] = ints("nodes_truenodeids", &[0, 0, 0, 1, 0, 0]);
    let e = refused(&model(vec![looped], vec![], 2, out()));
    assert!(e.contains("reaches one of its nodes twice"), "{e}");
    // A child that does not exist.
    let mut dangling = trees(false, "NONE");
    dangling.attribute[6] = ints("nodes_falsenodeids", &[9, 0, 0, 2, 0, 0]);
    let e = refused(&model(vec![dangling], vec![], 2, out()));
    assert!(e.contains("false child 9 does not exist"), "{e}");
    // A feature the input does not have.
    let e = refused(&model(vec![trees(false, "NONE")], vec![], 1, out()));
    assert!(e.contains("reads feature 1 of 1"), "{e}");
    // An operator weir does not run, on the scored path.
    let e = refused(&model(vec![node("Loop", "", &["input"], &["variable"], vec![])], vec![], 2, out()));
    assert!(e.starts_with("unsupported model: operator `Loop`"), "{e}");
    // A weight that claims a billion elements.
    let huge = TensorProto { dims: vec![40_000, 40_000], data_type: FLOAT, name: "w".into(), ..Default::default() };
    let e = refused(&model(vec![node("MatMul", "", &["input", "w"], &["variable"], vec![])], vec![huge], 2, out()));
    assert!(e.starts_with("model too large: tensor `w`"), "{e}");
    // A graph out of order (a cycle cannot be put in order).
    let cyclic = vec![
        node("Relu", "", &["b"], &["a"], vec![]),
        node("Relu", "", &["a"], &["b"], vec![]),
        node("Identity", "", &["b"], &["variable"], vec![]),
    ];
    let e = refused(&model(cyclic, vec![], 2, out()));
    assert!(e.contains("the graph has a cycle or is out of order"), "{e}");
    // Weights kept in another file.
    let external =
        TensorProto { dims: vec![2, 1], data_type: FLOAT, name: "w".into(), data_location: 1, ..Default::default() };
    let e = refused(&model(vec![node("MatMul", "", &["input", "w"], &["variable"], vec![])], vec![external], 2, out()));
    assert!(e.contains("keeps its data in another file"), "{e}");
    // A double input.
    let mut bytes = ModelProto::decode(&model(vec![trees(false, "NONE")], vec![], 2, out())[..]).unwrap();
    let graph = bytes.graph.as_mut().unwrap();
    graph.input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().elem_type = DOUBLE;
    let e = refused(&bytes.encode_to_vec());
    assert!(e.contains("export with a FloatTensorType"), "{e}");
    // No float output.
    let e = refused(&model(vec![trees(false, "NONE")], vec![], 2, vec![output("variable", INT64)]));
    assert!(e.contains("no float output"), "{e}");
}

#[test]
fn a_network_that_would_cost_too_much_per_row_is_refused() {
    // One 2 000 x 2 000 weight (16 MB, within every size bound) multiplied
    // in 14 times: 56M multiply-adds a row, over the per-row cost.
    let w = TensorProto {
        dims: vec![2000, 2000],
        data_type: FLOAT,
        raw_data: vec![0; 2000 * 2000 * 4],
        name: "w".into(),
        ..Default::default()
    };
    let mut nodes = Vec::new();
    let names: Vec<String> = (0..=14)
        .map(|i| {
            if i == 0 {
                "input".into()
            } else if i == 14 {
                "variable".into()
            } else {
                format!("h{i}")
            }
        })
        .collect();
    for i in 0..14 {
        nodes.push(node("MatMul", "", &[&names[i], "w"], &[&names[i + 1]], vec![]));
    }
    let e = refused(&model(nodes, vec![w], 2000, vec![output("variable", FLOAT)]));
    assert!(e.starts_with("model too large: a row would cost 56"), "{e}");
}
