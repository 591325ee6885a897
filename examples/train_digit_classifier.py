"""Train the digit classifier that scores generated digits (edge_sched.quality), in numpy.

The method: scikit-learn's 1797 digits go through the same preparation as the generator's
training data (``prepare_digits``: 16x16, [-1, 1]) and back through the classifier's own input
path (2x2 average pooling to 8x8, standardised per pixel). A fixed, stratified 20% is held out.
A one-hidden-layer MLP (``--hidden`` tanh units, softmax over 10 digits) is trained full-batch
with Adam and L2 weight decay on the other 80%, with small Gaussian pixel noise added each epoch
so that slightly imperfect generated digits are still read as digits. The held-out accuracy is
printed and stored in the weights file together with the held-out indices (the test re-measures
it) and the mean and covariance of the hidden features of all real digits (the reference of
``frechet_distance_to_real``).

    python examples/train_digit_classifier.py [--out edge_sched/models/digits/classifier.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from edge_sched.quality import (
    CLASSIFIER_PATH,
    DigitClassifier,
    pool_to_8x8,
    prepare_digits,
)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, ``fraction`` of each class held out."""
    rng = np.random.default_rng(seed)
    held = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        held.append(rng.permutation(idx)[: round(fraction * len(idx))])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


def train(x: np.ndarray, y: np.ndarray, hidden: int, epochs: int, lr: float, decay: float,
          noise: float, seed: int) -> dict:
    """Full-batch Adam on softmax cross-entropy; x is (N, 64) standardised, y (N,) digits."""
    rng = np.random.default_rng(seed)
    params = {"w1": rng.normal(0, 1 / np.sqrt(64), (64, hidden)), "b1": np.zeros(hidden),
              "w2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, 10)), "b2": np.zeros(10)}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    onehot = np.eye(10)[y]
    for epoch in range(1, epochs + 1):
        xn = x + noise * rng.standard_normal(x.shape)
        h = np.tanh(xn @ params["w1"] + params["b1"])
        logits = h @ params["w2"] + params["b2"]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d_logits = (p - onehot) / len(x)
        d_h = (d_logits @ params["w2"].T) * (1 - h**2)
        grads = {"w2": h.T @ d_logits + decay * params["w2"], "b2": d_logits.sum(0),
                 "w1": xn.T @ d_h + decay * params["w1"], "b1": d_h.sum(0)}
        for k in params:  # Adam, beta1 0.9, beta2 0.999
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
            params[k] -= lr * (m[k] / (1 - 0.9**epoch)) / (np.sqrt(v[k] / (1 - 0.999**epoch)) + 1e-8)
        if epoch % 100 == 0 or epoch == epochs:
            loss = -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))
            print(f"epoch {epoch:4d}  loss {loss:.4f}  train accuracy {np.mean(p.argmax(1) == y):.4f}")
    return params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CLASSIFIER_PATH)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--decay", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=0.3, help="std of input noise, standardised units")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.hidden < 1 or args.epochs < 1:
        raise ValueError(f"--hidden and --epochs must be >= 1, got {args.hidden}, {args.epochs}")
    if not 0.0 < args.holdout < 1.0:
        raise ValueError(f"--holdout must be in (0, 1), got {args.holdout}")

    digits = load_digits()
    images, labels = prepare_digits(digits.data), digits.target.astype(np.int64)
    train_idx, held_idx = stratified_split(labels, args.holdout, args.seed)
    pooled = pool_to_8x8(images)
    mean = pooled[train_idx].mean(axis=0)
    std = np.maximum(pooled[train_idx].std(axis=0), 0.1)  # border pixels are almost constant
    params = train((pooled[train_idx] - mean) / std, labels[train_idx], args.hidden, args.epochs,
                   args.lr, args.decay, args.noise, args.seed)

    # what ships is float32: measure that, not the float64 weights it was trained in
    shipped = {k: np.asarray(v, np.float32) for k, v in {**params, "mean": mean, "std": std}.items()}
    classifier = DigitClassifier(shipped)
    held_acc = float(np.mean(classifier.predict(images[held_idx]) == labels[held_idx]))
    train_acc = float(np.mean(classifier.predict(images[train_idx]) == labels[train_idx]))
    feats = classifier.features(images)
    out = dict(shipped, real_mu=feats.mean(axis=0), real_cov=np.cov(feats, rowvar=False),
               heldout_index=held_idx.astype(np.int16), heldout_accuracy=np.float64(held_acc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"train accuracy {train_acc:.4f} ({len(train_idx)} digits), "
          f"held-out accuracy {held_acc:.4f} ({len(held_idx)} digits)")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
