"""The training and inference scripts of `algorithms/`, driven the way SageMaker drives them.

Each test packages a task type's source dir with `package_source`, extracts it, writes channel
files, runs `train.py` in a subprocess with the SM_* environment of a script-mode training job,
then imports `inference.py` from the extracted folder and calls model_fn / input_fn /
predict_fn / output_fn as the inference toolkit does. Everything is seeded. Training runs with
SM_NUM_CPUS=1: on a shared 2-core machine that is both faster and steadier than 2 threads.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelloop.algorithm_source import INFERENCE_PROGRAM, TRAIN_PROGRAM, package_source, source_files

ROOT = Path(__file__).resolve().parents[2]
COMMON = sorted(p.name for p in (ROOT / "algorithms" / "common").glob("*.py"))
TRAIN_TIMEOUT = 240


# ---------------------------------------------------------------- helpers


def extract_source(task_type: str, workdir: Path) -> Path:
    archive = package_source(task_type, workdir / "package")
    src = workdir / "src"
    src.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    return src


def import_from(src: Path, module: str) -> ModuleType:
    """Import `module` from an extracted source dir under a unique name, as a serving container
    would (its folder on sys.path), without leaving its top-level modules in sys.modules."""
    local = {p.stem for p in src.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in local}
    sys.path.insert(0, str(src))
    try:
        alias = f"_labelloop_{module}_{hashlib.md5(str(src).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(alias, src / f"{module}.py")
        assert spec and spec.loader
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[alias] = loaded  # dataclasses look their module up while the class is made
        spec.loader.exec_module(loaded)
        return loaded
    finally:
        sys.path.remove(str(src))
        for name in local:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def write_channel(folder: Path, lines: list[dict[str, Any]], name: str = "data.manifest") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def run_training(
    src: Path,
    workdir: Path,
    hps: dict[str, Any],
    *,
    validation: Path | None = None,
    args: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess, Path, Path]:
    model_dir, failure = workdir / "model", workdir / "output" / "failure"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        SM_MODEL_DIR=str(model_dir),
        SM_CHANNEL_TRAIN=str(workdir / "train"),
        SM_CHANNEL_VALIDATION=str(validation if validation is not None else workdir / "validation"),
        SM_HPS=json.dumps(hps),
        SM_NUM_CPUS="1",
        SM_OUTPUT_FAILURE=str(failure),
    )
    proc = subprocess.run(
        [sys.executable, TRAIN_PROGRAM, *(args or [])],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT,
    )
    return proc, model_dir, failure


def assert_trained(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def transform(inference: ModuleType, model: Any, lines: list[dict[str, Any]], content_type: str = "application/jsonlines") -> np.ndarray:
    """One batch-transform request: N lines in, N probability rows out (checked)."""
    body = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
    output = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), "application/jsonlines")
    if isinstance(output, tuple):  # (body, content type), as the serving containers take it
        output, answered_as = output
        assert answered_as == "application/jsonlines"
    assert isinstance(output, str)
    out_lines = output.splitlines()
    assert len(out_lines) == len(lines)
    rows = [json.loads(line)["probabilities"] for line in out_lines]
    probs = np.array(rows, dtype=float)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    return probs


def steps_style(hps: dict[str, Any]) -> dict[str, str]:
    """Hyperparameters as the orchestrator sends them: every value JSON-encoded into a string."""
    return {k: json.dumps(v) for k, v in hps.items()}


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
