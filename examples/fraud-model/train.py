"""Trains the example's fraud model on the training table `weir features`
wrote, the way a data scientist would: LightGBM on the earlier 70 % of
event time, judged on the later 30 %, exported to ONNX for the rule's
package.

Usage: python train.py FEATURES.csv --out fraud-model.onnx --split-out split.txt

The table's columns are the transaction, the rule's features (their names
from the manifest's `[model] features`), the score (empty: there was no
model yet) and the label (1 fraud, 0 legitimate, empty when unknown).
Unlabelled rows are left out. The split time (RFC 3339) goes to
--split-out, so that `weir backtest --warm-up-until` measures the same
held-out range.
"""

import argparse
import csv

import lightgbm
import numpy as np
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import average_precision_score, roc_auc_score


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--out", required=True)
    parser.add_argument("--split-out", required=True)
    parser.add_argument("--train-share", type=float, default=0.7)
    args = parser.parse_args()

    with open(args.table, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if r[-1] != ""]
    features = header[3:-2]
    times = np.array([r[2] for r in rows])
    x = np.array([[float(v) for v in r[3:-2]] for r in rows], dtype=np.float32)
    y = np.array([int(r[-1]) for r in rows])
    # RFC 3339 times in UTC sort as text.
    split = np.sort(times)[int(len(times) * args.train_share)]
    train, test = times < split, times >= split
    print(f"{len(rows)} labelled rows of {len(features)} features; {y.sum()} fraud")
    print(f"train: {train.sum()} rows before {split} ({y[train].sum()} fraud); "
          f"test: {test.sum()} rows from it ({y[test].sum()} fraud)")

    model = lightgbm.LGBMClassifier(n_estimators=200, num_leaves=15, learning_rate=0.05, min_child_samples=10,
                                    subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=7,
                                    verbose=-1)
    model.fit(x[train], y[train])
    p = model.predict_proba(x[test])[:, 1]
    print(f"held out: PR-AUC {average_precision_score(y[test], p):.4f}, ROC-AUC {roc_auc_score(y[test], p):.4f}")
    importance = sorted(zip(model.feature_importances_, features), reverse=True)[:5]
    print("most used features:", ", ".join(f"{name} ({n})" for n, name in importance))

    onnx_model = convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, len(features)]))],
                                  zipmap=False, target_opset=15)
    with open(args.out, "wb") as f:
        f.write(onnx_model.SerializeToString())
    with open(args.split_out, "w") as f:
        f.write(split + "\n")


if __name__ == "__main__":
    main()
