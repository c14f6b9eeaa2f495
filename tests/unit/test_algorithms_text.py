"""Text classification's train.py and inference.py, driven the way SageMaker drives them; the hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest


from algorithm_helpers import (
    assert_trained, extract_source, import_from, run_training, steps_style, transform, write_channel,
)


def synthetic_texts(n: int, k: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short documents: 30 % of the words from the class's topic, the rest shared or noise."""
    rng = np.random.default_rng(seed)
    topics = [[f"{'abcdefgh'[c]}topic{j}" for j in range(30)] for c in range(k)]
    shared = [f"word{j}" for j in range(200)]
    texts, labels = [], []
    for _ in range(n):
        c = int(rng.integers(k))
        words = []
        for _ in range(int(rng.integers(8, 20))):
            r = rng.random()
            pool = topics[c] if r < 0.3 else topics[int(rng.integers(k))] if r < 0.4 else shared
            words.append(pool[int(rng.integers(len(pool)))])
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(c)
    return texts, np.array(labels)


# ---------------------------------------------------------------- text classification


@pytest.fixture(scope="module")
def text_src(tmp_path_factory) -> Path:
    return extract_source("text-classification", tmp_path_factory.mktemp("text-src"))


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], np.ndarray]:
    return synthetic_texts(1200, 4, seed=0)


def text_lines(texts: list[str], labels: np.ndarray, ids, with_label: bool = True, k_shift: int = 0) -> list[dict[str, Any]]:
    lines = []
    for i in ids:
        line: dict[str, Any] = {"labelloop-id": int(i), "source": texts[i]}
        if with_label:
            line["label"] = int(labels[i]) + k_shift
        lines.append(line)
    return lines


def test_text_training_and_inference(text_src, texts, tmp_path):
    docs, labels = texts
    write_channel(tmp_path / "train", text_lines(docs, labels, range(0, 400)))
    write_channel(tmp_path / "validation", text_lines(docs, labels, range(400, 500)))
    proc, model_dir, _ = run_training(
        text_src, tmp_path, steps_style({"label-attribute": "label", "num-classes": 4, "seed": 0}), args=["--regularization-c", "10"]
    )
    assert_trained(proc)
    assert "validation-accuracy=" in proc.stdout
    config = json.loads((model_dir / "model-config.json").read_text())
    assert config["hyperparameters"]["regularization-c"] == 10.0
    inference = import_from(text_src, "inference")
    model = inference.model_fn(str(model_dir))
    probs = transform(inference, model, text_lines(docs, labels, range(500, 1200), with_label=False))
    assert probs.shape == (700, 4)
    accuracy = float((probs.argmax(axis=1) == labels[500:1200]).mean())
    print(f"held-out text accuracy: {accuracy:.4f} (700 items)")
    assert accuracy >= 0.85, accuracy


def test_text_missing_class_and_no_validation(text_src, texts, tmp_path):
    """Labels shifted to 1..4 of num-classes 6: classes 0 and 5 never trained, no validation channel."""
    docs, labels = texts
    write_channel(tmp_path / "train", text_lines(docs, labels, range(0, 200), k_shift=1))
    (tmp_path / "validation").mkdir()  # present but empty
    proc, model_dir, _ = run_training(text_src, tmp_path, {"label-attribute": "label", "num-classes": 6})
    assert_trained(proc)
    assert "validation-accuracy=" not in proc.stdout
    inference = import_from(text_src, "inference")
    probs = transform(inference, inference.model_fn(str(model_dir)), text_lines(docs, labels, range(200, 260), False))
    assert probs.shape == (60, 6)
    assert np.all(probs[:, [0, 5]] == 0.0)
    assert float((probs.argmax(axis=1) == labels[200:260] + 1).mean()) >= 0.7


def test_text_single_class_training(text_src, texts, tmp_path):
    docs, _ = texts
    write_channel(tmp_path / "train", [{"labelloop-id": i, "source": docs[i], "category": 2} for i in range(10)])
    proc, model_dir, _ = run_training(text_src, tmp_path, {"label-attribute": "category", "num-classes": 3})
    assert_trained(proc)
    inference = import_from(text_src, "inference")
    probs = transform(inference, inference.model_fn(str(model_dir)), [{"source": "anything"}, {"source": ""}])
    np.testing.assert_array_equal(probs, [[0, 0, 1], [0, 0, 1]])


def test_text_bad_channel_line_fails_naming_the_line(text_src, texts, tmp_path):
    docs, labels = texts
    manifest = write_channel(tmp_path / "train", text_lines(docs, labels, range(10)))
    with manifest.open("a") as handle:
        handle.write('{"labelloop-id": 99, "source": "truncated\n')
    proc, _, failure = run_training(text_src, tmp_path, {"label-attribute": "label", "num-classes": 4})
    assert proc.returncode != 0
    reason = failure.read_text()
    assert f"{manifest} line 11" in reason and "not valid JSON" in reason, reason


def test_text_missing_required_hyperparameter_fails(text_src, texts, tmp_path):
    docs, labels = texts
    write_channel(tmp_path / "train", text_lines(docs, labels, range(10)))
    proc, _, failure = run_training(text_src, tmp_path, {"label-attribute": "label"})
    assert proc.returncode != 0
    assert "num-classes is required" in failure.read_text()


def test_text_inference_request_formats(text_src, tmp_path):
    inference = import_from(text_src, "inference")
    with pytest.raises(ValueError, match="text/csv"):
        inference.input_fn("a,b\n", "text/csv")
    body = '{"source": "one"}\n\n{"source": "two"}\r\n'
    assert [r["source"] for r in inference.input_fn(body, "application/jsonlines; charset=utf-8")] == ["one", "two"]
    assert len(inference.input_fn(b'[{"source": "x"}, {"source": "y"}]', "application/json")) == 2
    with pytest.raises(ValueError, match="request line 2"):
        inference.input_fn(b'{"source": "x"}\nnot json\n', "application/jsonlines")


def test_text_output_names_its_content_type(text_src):
    """A bare string leaves the scikit-learn container to label the reply text/html."""
    inference = import_from(text_src, "inference")
    for accept in ("application/jsonlines", "*/*", None):
        body, content_type = inference.output_fn(np.array([[0.25, 0.75]]), accept)
        assert content_type == "application/jsonlines" and json.loads(body) == {"probabilities": [0.25, 0.75]}
    assert inference.output_fn(np.array([[1.0, 0.0]]), "application/json")[1] == "application/json"


# ---------------------------------------------------------------- hyperparameters


def test_hyperparameters_from_sm_hps_and_command_line(text_src):
    hp = import_from(text_src, "hyperparameters")
    specs = [
        hp.Spec("label-attribute", str, "label"),
        hp.Spec("num-classes", int),
        hp.Spec("learning-rate", float, 0.1),
        hp.Spec("epochs", int, None, allow_auto=True),
        hp.Spec("augment", bool, True),
    ]
    warnings: list[str] = []
    environ = {"SM_HPS": json.dumps({"label-attribute": '"category"', "num-classes": "4", "epochs": "auto", "typo": 1})}
    values = hp.parse(specs, ["--learning-rate", "0.5", "--augment=false"], environ, warn=warnings.append)
    assert values == {"label_attribute": "category", "num_classes": 4, "learning_rate": 0.5, "epochs": None, "augment": False}
    assert warnings == ["ignoring unknown hyperparameter 'typo'"]
    with pytest.raises(hp.HyperparameterError, match="num-classes"):
        hp.parse(specs, ["--num-classes", "four"], {})
