"""The digits example at small size: it runs end to end and its last line is the summary;
its public prior is built from synthetic digits alone."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "sklearn_digits"
SCRIPT = EXAMPLE / "run.py"


@pytest.fixture(scope="module")
def example():
    """The example's ``run`` and ``synthetic`` modules, under names no other test uses."""
    sys.path.insert(0, str(EXAMPLE))  # run.py imports its sibling ``synthetic``
    try:
        modules = []
        for name in ("run", "synthetic"):
            spec = importlib.util.spec_from_file_location(f"digits_example_{name}", EXAMPLE / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules.append(module)
        yield tuple(modules)
    finally:
        sys.path.remove(str(EXAMPLE))


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args, "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_digits_example_small_run_prints_json_summary():
    summary = _run("--clients", "8", "--rounds", "3", "--neighbours", "7", "--target-epsilon", "8",
                   "--public-samples", "300")
    assert {"accuracy", "epsilon", "delta", "rounds"} <= set(summary)
    assert summary["rounds"] == 3 and summary["delta"] == 1e-5
    assert 0 < summary["epsilon"] <= 8.0
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert summary["backend"] == "secagg+"
    assert summary["prior"] == "synthetic" and 0.0 <= summary["prior_accuracy"] <= 1.0
    assert summary["server_learning_rate"] == 0.3


def test_digits_example_without_prior_starts_from_zero():
    summary = _run("--clients", "6", "--rounds", "2", "--neighbours", "5", "--prior", "none",
                   "--plain")
    assert summary["prior"] == "none" and summary["prior_accuracy"] is None
    assert summary["server_learning_rate"] == 1.0


def test_synthetic_digits_look_like_load_digits_and_are_deterministic(example):
    _, synthetic = example
    images, labels = synthetic.synthetic_digits(200, seed=3)
    assert images.shape == (200, 64) and labels.shape == (200,)
    assert images.min() >= 0 and images.max() <= 16 and np.all(images == np.round(images))
    assert set(labels.tolist()) == set(range(10))
    again, _ = synthetic.synthetic_digits(200, seed=3)
    other, _ = synthetic.synthetic_digits(200, seed=4)
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    with pytest.raises(ValueError, match="at least 1"):
        synthetic.synthetic_digits(0)


def test_public_prior_beats_chance_on_the_real_digits_without_seeing_them(example):
    run, _ = example
    from sklearn.datasets import load_digits

    digits = load_digits()
    prior = run.public_prior(1000, 28)
    assert prior.coef_.shape == (10, 28)
    # its inputs are the sample count and the feature count: nothing private reaches it
    assert np.array_equal(prior.coef_, run.public_prior(1000, 28).coef_)
    assert prior.score(run.features(digits.data, 28), digits.target) > 0.5  # chance: 0.1


def test_too_few_public_samples_is_a_usage_error():
    out = subprocess.run([sys.executable, str(SCRIPT), "--public-samples", "10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--public-samples: must be at least 100, got 10" in out.stderr
