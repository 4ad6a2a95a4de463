"""The starter model `weir rule new NAME --model` puts in a new rule crate
(host/assets/starter-model.onnx): a small LightGBM classifier over the four
features the starter rule computes, trained on synthetic transactions where
fraud is a large purchase at night from an account buying fast at a new
merchant. It is there to show the wiring; replace it with a model trained
on your own features.

Usage: python starter.py OUT.onnx
"""

import sys

import lightgbm
import numpy as np
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType


def main():
    rng = np.random.default_rng(11)
    n = 40_000
    amount = rng.lognormal(mean=3.5, sigma=1.2, size=n)  # major units
    hour = rng.integers(0, 24, size=n).astype(np.float64)
    count_1h = rng.poisson(1.0, size=n).astype(np.float64)
    new_merchant = (rng.random(n) < 0.3).astype(np.float64)
    risk = (
        1.5 * (amount > 400)
        + 1.2 * ((hour < 6) | (hour >= 23))
        + 0.6 * np.minimum(count_1h, 5)
        + 0.8 * new_merchant
    )
    fraud = (rng.random(n) < 1 / (1 + np.exp(-(risk - 3.2) * 2.5))).astype(int)
    x = np.column_stack([amount, hour, count_1h, new_merchant]).astype(np.float32)
    model = lightgbm.LGBMClassifier(n_estimators=20, max_depth=3, num_leaves=7, learning_rate=0.3, verbose=-1,
                                    random_state=11)
    model.fit(x, fraud)
    onnx_model = convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, 4]))], zipmap=False,
                                  target_opset=15)
    with open(sys.argv[1], "wb") as f:
        f.write(onnx_model.SerializeToString())
    probe = np.array([[600, 2, 4, 1], [30, 14, 0, 0]], dtype=np.float32)
    print("fraud share", fraud.mean(), "probe", model.predict_proba(probe)[:, 1])


if __name__ == "__main__":
    main()
