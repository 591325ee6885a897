"""Measured sample quality for the built-in digits model, in numpy only.

The digits model (examples/train_digits.py) is trained on scikit-learn's 8x8 digits, upscaled
to 16x16 with :func:`prepare_digits`, pixels in [-1, 1]. Generated samples are scored by a small
digit classifier shipped in ``edge_sched/models/digits/classifier.npz``
(examples/train_digit_classifier.py trains it):

- input: a 16x16 image in [-1, 1], average-pooled 2x2 back to 8x8 (pooling undoes the bilinear
  upscale almost exactly, and makes the classifier blind to 16x16 texture it never saw),
  then standardised with the training mean and standard deviation per pixel;
- a one-hidden-layer MLP: ``h = tanh(x W1 + b1)``, ``logits = h W2 + b2``.

:func:`class_accuracy` is the fraction of images whose predicted class is the requested one.
:func:`frechet_distance` is the Frechet distance between Gaussians fitted to the hidden features
``h`` of two image sets (the FID recipe, with this classifier in place of Inception):
``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``. The trace of the matrix square root is
taken on the symmetric form ``sqrt(C_a) C_b sqrt(C_a)``, whose eigenvalues are those of
``C_a C_b``, so numpy's ``eigh`` suffices (no scipy).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "CLASSIFIER_PATH",
    "DigitClassifier",
    "class_accuracy",
    "frechet_distance",
    "frechet_distance_to_real",
    "gaussian_frechet_distance",
    "load_classifier",
    "pool_to_8x8",
    "prepare_digits",
]

CLASSIFIER_PATH = Path(__file__).parent / "models" / "digits" / "classifier.npz"


def _upscale2_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear x2 along one axis, half-pixel centres, edges clamped (torch's
    ``F.interpolate(mode="bilinear", align_corners=False)``): output 2k is
    0.75 x[k] + 0.25 x[k-1], output 2k+1 is 0.75 x[k] + 0.25 x[k+1]."""
    x = np.moveaxis(x, axis, -1)
    left = np.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    right = np.concatenate([x[..., 1:], x[..., -1:]], axis=-1)
    out = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    out[..., 0::2] = 0.75 * x + 0.25 * left
    out[..., 1::2] = 0.75 * x + 0.25 * right
    return np.moveaxis(out, -1, axis)


def prepare_digits(images: np.ndarray) -> np.ndarray:
    """scikit-learn digits (values 0..16, shape (N, 64) or (N, 8, 8)) -> float32 (N, 1, 16, 16)
    in [-1, 1]: the model's training data."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2 and images.shape[1] == 64:
        images = images.reshape(-1, 8, 8)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"images must have shape (N, 64) or (N, 8, 8), got {images.shape}")
    x = images / 8.0 - 1.0
    x = _upscale2_axis(_upscale2_axis(x, 1), 2)
    return x[:, None].astype(np.float32)


def pool_to_8x8(images: np.ndarray) -> np.ndarray:
    """(N, 1, 16, 16) or (N, 16, 16) images in [-1, 1] -> (N, 64) float64, 2x2 averages."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1:] != (16, 16):
        raise ValueError(f"images must have shape (N, 1, 16, 16) or (N, 16, 16), got {np.shape(images)}")
    return x.reshape(-1, 8, 2, 8, 2).mean(axis=(2, 4)).reshape(-1, 64)


class DigitClassifier:
    """The shipped digit classifier: pooled, standardised pixels -> tanh hidden layer -> logits."""

    def __init__(self, params):
        try:
            self.w1 = np.asarray(params["w1"], dtype=np.float64)
            self.b1 = np.asarray(params["b1"], dtype=np.float64)
            self.w2 = np.asarray(params["w2"], dtype=np.float64)
            self.b2 = np.asarray(params["b2"], dtype=np.float64)
            self.mean = np.asarray(params["mean"], dtype=np.float64)
            self.std = np.asarray(params["std"], dtype=np.float64)
        except KeyError as e:
            raise ValueError(f"classifier parameters lack {e.args[0]!r}; need w1, b1, w2, b2, mean, std") from None
        if self.w1.shape[0] != 64 or self.w2.shape != (self.w1.shape[1], 10):
            raise ValueError(f"classifier shapes w1 {self.w1.shape}, w2 {self.w2.shape}: expected (64, H), (H, 10)")
        # statistics of the hidden features of all real digits (for frechet_distance_to_real)
        self.real_mu = np.asarray(params["real_mu"], dtype=np.float64) if "real_mu" in params else None
        self.real_cov = np.asarray(params["real_cov"], dtype=np.float64) if "real_cov" in params else None

    def features(self, images: np.ndarray) -> np.ndarray:
        """Hidden-layer activations, (N, H) float64."""
        x = (pool_to_8x8(images) - self.mean) / self.std
        return np.tanh(x @ self.w1 + self.b1)

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.features(images) @ self.w2 + self.b2

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted digit per image, (N,) int64."""
        return np.argmax(self.logits(images), axis=1)


@lru_cache(maxsize=4)
def _load(path: str) -> DigitClassifier:
    if not Path(path).is_file():
        raise FileNotFoundError(f"digit classifier weights not found: {path} "
                                f"(examples/train_digit_classifier.py writes them)")
    with np.load(path) as f:
        return DigitClassifier({k: f[k] for k in f.files})


def load_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The shipped classifier (or one saved at ``path`` by the training script); cached."""
    return _load(str(Path(path) if path is not None else CLASSIFIER_PATH))


def class_accuracy(images: np.ndarray, labels, classifier: DigitClassifier | None = None) -> float:
    """Fraction of ``images`` (N, 1, 16, 16) in [-1, 1] classified as their ``labels`` (0..9)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be one digit per image: {len(images)} images, labels shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must be digits 0..9, got values {sorted(set(labels.tolist()) - set(range(10)))}")
    classifier = classifier or load_classifier()
    return float(np.mean(classifier.predict(images) == labels))


def _symmetric(m: np.ndarray) -> np.ndarray:
    return (m + m.T) / 2


def _psd_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a positive semi-definite matrix with rounding noise removed: below the
    numerical-rank threshold (largest * size * eps) they are zero. A covariance of fewer samples
    than features is rank-deficient, and sqrt() would blow that noise up (1e-16 -> 1e-8 each)."""
    tol = max(float(w.max(initial=0.0)), 0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(_symmetric(c))
    return (v * np.sqrt(_psd_eigenvalues(w))) @ v.T


def gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float:
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b)."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != mu_a.shape * 2:
        raise ValueError(f"mismatched shapes: mu {mu_a.shape} / {mu_b.shape}, cov {cov_a.shape} / {cov_b.shape}")
    root_a = _sqrt_psd(cov_a)
    # eigenvalues of sqrt(A) B sqrt(A) are those of A B; their square roots sum to tr((A B)^(1/2))
    inner = np.linalg.eigvalsh(_symmetric(root_a @ cov_b @ root_a))
    tr_sqrt = np.sum(np.sqrt(_psd_eigenvalues(inner)))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)


def _stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(features) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 images per set, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(images_a: np.ndarray, images_b: np.ndarray,
                     classifier: DigitClassifier | None = None) -> float:
    """Frechet distance between the classifier's hidden features of two image sets
    (each (N, 1, 16, 16) in [-1, 1], N >= 2). 0 for identical sets; lower is closer."""
    classifier = classifier or load_classifier()
    return gaussian_frechet_distance(*_stats(classifier.features(images_a)),
                                     *_stats(classifier.features(images_b)))


def frechet_distance_to_real(images: np.ndarray, classifier: DigitClassifier | None = None) -> float:
    """Frechet distance to all 1797 real digits (statistics stored with the classifier, so no
    scikit-learn is needed at run time)."""
    classifier = classifier or load_classifier()
    if classifier.real_mu is None or classifier.real_cov is None:
        raise ValueError("this classifier file has no real-digit statistics (real_mu, real_cov)")
    return gaussian_frechet_distance(*_stats(classifier.features(images)),
                                     classifier.real_mu, classifier.real_cov)
