"""Reference models and scores for weir's model runner.

Trains four models on one synthetic fraud-like table (a LightGBM
classifier, a scikit-learn random forest, an XGBoost classifier and a
scikit-learn MLP), exports each to ONNX as a data scientist would
(onnxmltools and skl2onnx, float inputs, the probabilities as a tensor),
scores the test rows with onnxruntime, and writes for each model:

    OUT/NAME.onnx          the model
    OUT/NAME.expected.f32  onnxruntime's probabilities, row-major float32
    OUT/rows.f32           the rows scored, row-major float32
    OUT/manifest.json      names, row and feature counts, output widths

Usage: python parity.py OUT [--rows N] [--trees T] [--depth D]
"""

import argparse
import json
import os

import numpy as np
import onnxruntime as ort
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=10_000, help="test rows scored (default 10000)")
    p.add_argument("--features", type=int, default=30)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=6)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    x, y = make_classification(
        n_samples=20_000 + a.rows, n_features=a.features, n_informative=12, weights=[0.97], flip_y=0.01,
        random_state=7,
    )
    x = x.astype(np.float32)
    # Missing values, as real features have them (trees route them).
    rng = np.random.default_rng(7)
    x_train, y_train, x_test = x[:20_000], y[:20_000], x[20_000:]
    x_test_nan = x_test.copy()
    x_test_nan[rng.random(x_test.shape) < 0.01] = np.nan

    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
    from skl2onnx import to_onnx

    models = {}
    import lightgbm

    gbm = lightgbm.LGBMClassifier(n_estimators=a.trees, max_depth=a.depth, num_leaves=2 ** a.depth - 1,
                                  learning_rate=0.1, verbose=-1, random_state=7)
    gbm.fit(x_train, y_train)
    models["lightgbm"] = (convert_lightgbm(gbm, initial_types=[("input", MlFloat([None, a.features]))],
                                           zipmap=False, target_opset=15), x_test_nan)

    forest = RandomForestClassifier(n_estimators=a.trees, max_depth=a.depth, random_state=7, n_jobs=1)
    forest.fit(x_train, y_train)
    models["random-forest"] = (to_onnx(forest, x_train[:1], options={"zipmap": False}, target_opset={"": 15, "ai.onnx.ml": 3}), x_test)

    import xgboost

    booster = xgboost.XGBClassifier(n_estimators=a.trees, max_depth=a.depth, learning_rate=0.1, random_state=7,
                                    n_jobs=1)
    booster.fit(x_train, y_train)
    models["xgboost"] = (convert_xgboost(booster, initial_types=[("input", MlFloat([None, a.features]))],
                                         target_opset=15), x_test_nan)

    mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=200, random_state=7))
    mlp.fit(x_train, y_train)
    models["mlp"] = (to_onnx(mlp, x_train[:1], options={"zipmap": False}, target_opset={"": 15, "ai.onnx.ml": 3}), x_test)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    manifest = {"rows": a.rows, "features": a.features, "models": {}}
    for name, (onnx_model, rows) in models.items():
        data = onnx_model.SerializeToString()
        with open(os.path.join(a.out, f"{name}.onnx"), "wb") as f:
            f.write(data)
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: rows})
        probabilities = next(o for o in outputs if isinstance(o, np.ndarray) and o.dtype == np.float32)
        probabilities = np.ascontiguousarray(probabilities, dtype=np.float32)
        probabilities.tofile(os.path.join(a.out, f"{name}.expected.f32"))
        np.ascontiguousarray(rows, dtype=np.float32).tofile(os.path.join(a.out, f"{name}.rows.f32"))
        manifest["models"][name] = {"outputs": int(probabilities.shape[1]), "bytes": len(data)}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
