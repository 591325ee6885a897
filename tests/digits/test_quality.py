"""edge_sched.quality: digit preparation, the shipped classifier, the Frechet distance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from edge_sched import quality
from edge_sched.quality import (
    class_accuracy,
    frechet_distance,
    frechet_distance_to_real,
    gaussian_frechet_distance,
    load_classifier,
    prepare_digits,
)


@pytest.fixture(scope="session")
def real():
    digits = load_digits()
    return prepare_digits(digits.data), digits.target


def test_prepare_digits_is_torch_bilinear_upscale(real):
    digits = load_digits()
    ref = F.interpolate(torch.from_numpy(digits.images[:, None] / 8.0 - 1.0), scale_factor=2,
                        mode="bilinear", align_corners=False).numpy()
    images, _ = real
    assert images.shape == (1797, 1, 16, 16) and images.dtype == np.float32
    np.testing.assert_allclose(images, ref, rtol=0, atol=1e-6)
    assert images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(prepare_digits(digits.images), images)  # (N, 8, 8) input too


def test_classifier_held_out_accuracy(real):
    images, labels = real
    clf = load_classifier()
    with np.load(quality.CLASSIFIER_PATH) as f:
        held, stored = f["heldout_index"].astype(np.int64), float(f["heldout_accuracy"])
    # a fifth of each class, held out of training (re-measured here, and as the script reported it)
    counts = np.bincount(labels[held], minlength=10)
    np.testing.assert_allclose(counts / np.bincount(labels, minlength=10), 0.2, atol=0.01)
    acc = class_accuracy(images[held], labels[held], clf)
    assert acc == pytest.approx(stored, abs=1e-12)
    assert acc >= 0.95, acc
    assert class_accuracy(images, labels) >= 0.95


def test_classifier_file_is_small():
    assert quality.CLASSIFIER_PATH.stat().st_size < 32_000


def test_frechet_matches_scipy_sqrtm(real):
    images, _ = real
    clf = load_classifier()
    fa, fb = clf.features(images[:900]), clf.features(images[900:] * 0.8)
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    ref = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real))
    ours = frechet_distance(images[:900], images[900:] * 0.8)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert gaussian_frechet_distance(mu_a, ca, mu_b, cb) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(images[900:] * 0.8, images[:900]) == pytest.approx(ours, rel=1e-6)


def test_frechet_orders_real_against_noise(real):
    images, _ = real
    rng = np.random.default_rng(0)
    noise = np.clip(rng.standard_normal(images.shape), -1, 1).astype(np.float32)
    assert abs(frechet_distance(images, images)) < 1e-8
    assert abs(frechet_distance_to_real(images)) < 1e-8  # the stored statistics are of these digits
    halves = frechet_distance(images[::2], images[1::2])
    assert 0 < halves < 0.1 * frechet_distance(images, noise)
    assert frechet_distance_to_real(noise) == pytest.approx(frechet_distance(images, noise), rel=1e-6)


def test_rank_deficient_covariance_is_fine(real):
    images, _ = real
    small = images[:5]  # 5 samples, 32 features: covariance of rank 4
    assert np.isfinite(frechet_distance(small, images))
    assert abs(frechet_distance(small, small)) < 1e-6


def test_bad_input():
    images = np.zeros((4, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match="shape"):
        prepare_digits(np.zeros((3, 7, 7)))
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        class_accuracy(np.zeros((4, 1, 8, 8)), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="one digit per image"):
        class_accuracy(images, [0, 1])
    with pytest.raises(ValueError, match=r"0\.\.9.*\[10\]"):
        class_accuracy(images, [0, 1, 2, 10])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(images[:1], images)
    with pytest.raises(FileNotFoundError, match="train_digit_classifier"):
        load_classifier("/nonexistent/classifier.npz")
