"""The training and inference scripts of `algorithms/`, driven the way SageMaker drives them.

Each test packages a task type's source dir with `package_source`, extracts it, writes channel
files, runs `train.py` in a subprocess with the SM_* environment of a script-mode training job,
then imports `inference.py` from the extracted folder and calls model_fn / input_fn /
predict_fn / output_fn as the inference toolkit does. Everything is seeded. Training runs with
SM_NUM_CPUS=1: on a shared 2-core machine that is both faster and steadier than 2 threads.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelloop.algorithm_source import INFERENCE_PROGRAM, TRAIN_PROGRAM, package_source, source_files

from algorithm_helpers import (
    assert_trained, extract_source, import_from, run_training, steps_style, transform, write_channel,
)

ROOT = Path(__file__).resolve().parents[2]
COMMON = sorted(p.name for p in (ROOT / "algorithms" / "common").glob("*.py"))


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[list[str], np.ndarray]:
    """sklearn's 8x8 digits as grayscale PNG files (0-16 scaled to 0-255)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(data.images):
        path = folder / f"{i}.png"
        Image.fromarray((image * (255 / 16)).round().astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
    return paths, data.target.astype(int)


def digit_lines(paths: list[str], labels: np.ndarray, ids: np.ndarray, with_label: bool = True) -> list[dict[str, Any]]:
    lines = []
    for i in ids:
        line: dict[str, Any] = {"labelloop-id": int(i), "source-ref": paths[i]}
        if with_label:
            line["label"] = int(labels[i])
            line["label-metadata"] = {"class-name": str(labels[i]), "human-annotated": "yes"}
        lines.append(line)
    return lines


# ---------------------------------------------------------------- packaging


@pytest.mark.parametrize(
    "task_type, own",
    [
        ("image-classification", {"train.py", "inference.py", "network.py", "preprocess.py"}),
        ("text-classification", {"train.py", "inference.py", "text_model.py"}),
    ],
)
def test_package_source_is_flat_and_deterministic(tmp_path, task_type, own):
    first = package_source(task_type, tmp_path / "a")
    second = package_source(task_type, tmp_path / "b")
    assert first == tmp_path / "a" / "sourcedir.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert set(names) == own | set(COMMON)
    assert all(m.isfile() and "/" not in m.name and m.mtime == members[0].mtime for m in members)
    assert {TRAIN_PROGRAM, INFERENCE_PROGRAM} <= set(source_files(task_type))
    assert gzip.open(first).read()  # a real gzip stream


def test_package_source_rejects_unknown_task_type(tmp_path):
    with pytest.raises(ValueError, match="video-tracking"):
        package_source("video-tracking", tmp_path)


# ---------------------------------------------------------------- image classification


@pytest.fixture(scope="module")
def image_src(tmp_path_factory) -> Path:
    return extract_source("image-classification", tmp_path_factory.mktemp("image-src"))


@pytest.fixture(scope="module")
def digits_model(image_src, digits, tmp_path_factory):
    """Trained on 500 random digits (100 more for validation), as the orchestrator would ask."""
    paths, labels = digits
    work = tmp_path_factory.mktemp("digits-run")
    order = np.random.default_rng(0).permutation(len(labels))
    train_ids, val_ids, test_ids = order[:500], order[500:650], order[650:]
    write_channel(work / "train", digit_lines(paths, labels, train_ids), "train.manifest")
    write_channel(work / "validation", digit_lines(paths, labels, val_ids), "validation.manifest")
    hps = steps_style({"label-attribute": "label", "num-classes": 10, "seed": 1, "sagemaker_program": "train.py"})
    proc, model_dir, _ = run_training(image_src, work, hps, args=["--epochs", "15"])
    assert_trained(proc)
    return proc, model_dir, test_ids


def test_image_training_writes_model_and_metric(digits_model):
    proc, model_dir, _ = digits_model
    assert (model_dir / "model.pt").is_file()
    config = json.loads((model_dir / "model-config.json").read_text())
    assert config["num_classes"] == 10 and config["image"]["channels"] == 1
    assert config["image"]["image_size"] == 16  # 8x8 digits are upsampled
    assert config["epochs"] == 15  # the command line reached the script
    assert "shifts up to 1 px" in proc.stdout  # 15 epochs: a small set, shifted (auto)
    metric = [line for line in proc.stdout.splitlines() if line.startswith("validation-accuracy=")]
    assert len(metric) == 1 and float(metric[0].split("=")[1]) >= 0.85


def test_image_inference_accuracy_on_held_out_digits(digits_model, image_src, digits):
    _, model_dir, test_ids = digits_model
    paths, labels = digits
    inference = import_from(image_src, "inference")
    model = inference.model_fn(str(model_dir))
    probs = transform(inference, model, digit_lines(paths, labels, test_ids, with_label=False))
    assert probs.shape == (len(test_ids), 10)
    accuracy = float((probs.argmax(axis=1) == labels[test_ids]).mean())
    print(f"held-out digits accuracy: {accuracy:.4f} ({len(test_ids)} items)")
    assert accuracy >= 0.9, accuracy
    # The validation channel is transformed with its labels on: same answers, labels ignored.
    some = test_ids[:20]
    labelled = transform(inference, model, digit_lines(paths, labels, some), content_type="application/json")
    np.testing.assert_allclose(labelled, probs[:20], rtol=1e-6, atol=1e-9)


def test_image_missing_classes_still_get_probabilities(image_src, digits, tmp_path):
    """Class 7 absent from training and num-classes 11 > 10 digits: 11 probabilities a line.
    Trained twice with the same seed: identical predictions."""
    paths, labels = digits
    ids = [i for i in range(300) if labels[i] != 7]
    write_channel(tmp_path / "train", digit_lines(paths, labels, np.array(ids)))
    runs = []
    for attempt in ("a", "b"):
        work = tmp_path / attempt
        work.mkdir()
        (work / "train").symlink_to(tmp_path / "train")
        hps = {"label-attribute": "label", "num-classes": 11, "seed": 5, "epochs": 3}
        proc, model_dir, _ = run_training(image_src, work, hps, validation=work / "absent")
        assert_trained(proc)
        assert "validation-accuracy=" not in proc.stdout
        assert "shifts up to 0 px" in proc.stdout  # 3 epochs: too few passes for shifts to pay (auto)
        inference = import_from(image_src, "inference")
        runs.append(transform(inference, inference.model_fn(str(model_dir)), digit_lines(paths, labels, np.arange(300, 340), False)))
    assert runs[0].shape == (40, 11)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_image_inference_reads_s3_references(digits_model, image_src, digits, monkeypatch):
    moto = pytest.importorskip("moto")
    import boto3

    _, model_dir, test_ids = digits_model
    paths, labels = digits
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    inference = import_from(image_src, "inference")
    model = inference.model_fn(str(model_dir))
    ids = test_ids[:30]
    local = transform(inference, model, digit_lines(paths, labels, ids, with_label=False))
    with moto.mock_aws():
        inference.model_serving.object_loader._client = None  # a client made inside the mock
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="images")
        lines = []
        for i in ids:
            s3.put_object(Bucket="images", Key=f"digits/{i}.png", Body=Path(paths[i]).read_bytes())
            lines.append({"labelloop-id": int(i), "source-ref": f"s3://images/digits/{i}.png"})
        remote = transform(inference, model, lines)
        with pytest.raises(ValueError, match=r"request line 2: cannot use image s3://images/missing.png"):
            transform(inference, model, lines[:1] + [{"source-ref": "s3://images/missing.png"}])
    inference.model_serving.object_loader._client = None
    np.testing.assert_allclose(remote, local, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("problem", ["missing-label", "not-an-image", "label-out-of-range"])
def test_image_bad_channel_line_fails_naming_the_line(image_src, digits, tmp_path, problem):
    paths, labels = digits
    lines = digit_lines(paths, labels, np.arange(5))
    if problem == "missing-label":
        del lines[2]["label"]
        expected = "missing label attribute 'label'"
    elif problem == "not-an-image":
        bogus = tmp_path / "bogus.png"
        bogus.write_text("not a png")
        lines[2]["source-ref"] = str(bogus)
        expected = "not a decodable image"
    else:
        lines[2]["label"] = 10
        expected = "out of range"
    manifest = write_channel(tmp_path / "train", lines, "part-0001.jsonl")
    proc, model_dir, failure = run_training(image_src, tmp_path, {"label-attribute": "label", "num-classes": 10})
    assert proc.returncode != 0
    reason = failure.read_text()
    assert f"{manifest} line 3" in reason and expected in reason, reason
    assert not (model_dir / "model.pt").exists()


def test_image_inference_rejects_unsupported_content_type(image_src):
    inference = import_from(image_src, "inference")
    with pytest.raises(ValueError, match="text/csv"):
        inference.input_fn(b"1,2,3\n", "text/csv")
    with pytest.raises(ValueError, match="application/x-recordio-protobuf"):
        inference.output_fn(np.full((1, 2), 0.5), "application/x-recordio-protobuf")


# ---------------------------------------------------------------- batch transform limits


@pytest.mark.parametrize("n_classes", [2, 10, 30, 100, 1000])
def test_a_full_mini_batch_gets_a_reply_the_model_server_sends_in_time(image_src, n_classes, monkeypatch):
    """MaxPayloadInMB of the shortest transform input lines: the reply stays under TorchServe's
    default max_response_size (6,553,500 bytes, which the PyTorch inference container keeps),
    and the request's S3 reads fit the model server's timeout.

    Before: 6 MB requests of 134-byte lines with 10 classes replied ~11.3 MB (InferUnlabeled
    failed on any unlabeled set over ~27k images)."""
    from labelloop import aws_limits

    protocol = import_from(image_src, "jsonlines_protocol")
    shortest = {"labelloop-id": 0, "source-ref": "s3://abc/k"}  # shortest bucket and key S3 allows
    line = aws_limits.transform_line(shortest, n_classes)
    line_bytes = len(json.dumps(line, separators=(",", ":"))) + 1  # as storage.LineWriter writes it
    assert line_bytes >= aws_limits.min_line_bytes(n_classes)
    lines = aws_limits.PAYLOAD_BYTES // line_bytes  # a full mini-batch of them
    worst = np.full((lines, n_classes), 1.2345678901234567e-100)  # the longest float json.dumps writes in [0, 1]
    reply = protocol.format_response(worst, "application/jsonlines").encode()
    assert len(reply) <= aws_limits.worst_case_reply_bytes(n_classes, line_bytes)  # the bound holds for the real format
    assert len(reply) <= aws_limits.MODEL_SERVER_REPLY_LIMIT, f"{len(reply):,} bytes for {lines:,} lines"
    # S3 reads: one GET per line at a pessimistic 0.2 s, on the fewest loader threads
    # (object_loader.default_workers: at least 8 with one CPU), must leave most of the model
    # server's timeout to decoding and the network; TorchServe's default 60 s would not do.
    monkeypatch.setenv("SM_NUM_CPUS", "1")
    workers = import_from(image_src, "object_loader").default_workers()
    assert lines <= aws_limits.MAX_LINES_PER_REQUEST
    reads = lines * 0.2 / workers
    assert reads <= aws_limits.MODEL_SERVER_TIMEOUT / 4, reads
