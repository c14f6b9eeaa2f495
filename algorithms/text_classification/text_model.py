"""The text model, shared by train.py and inference.py (scikit-learn only: no torch here).

Features: TF-IDF of word uni- and bi-grams plus TF-IDF of character 2-5-grams (within word
boundaries), both with sublinear tf and L2-normalised; classifier: multinomial logistic
regression. The fitted pipeline only knows the classes present in training; `TextModel` maps
its columns onto all K class indices (classes absent from training get probability 0) and
applies the temperature fitted on the validation channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

import object_loader
import temperature_scaling

MODEL_FILE = "model.joblib"
CONFIG_FILE = "model-config.json"


def build_pipeline(args: dict[str, Any]) -> Pipeline:
    word = TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, args["word-ngram-max"]),
        token_pattern=r"(?u)\b\w+\b",
        lowercase=True,
        sublinear_tf=True,
        min_df=args["min-df"],
        max_features=args["max-features"],
        dtype=np.float32,
    )
    char = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(args["char-ngram-min"], args["char-ngram-max"]),
        lowercase=True,
        sublinear_tf=True,
        min_df=args["min-df"],
        max_features=args["max-features"],
        dtype=np.float32,
    )
    features = FeatureUnion([("word", word), ("char", char)])
    classifier = LogisticRegression(
        C=args["regularization-c"],
        max_iter=args["max-iter"],
        class_weight="balanced" if args["class-weight"] == "balanced" else None,
        random_state=args["seed"],
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def text_of(record: dict[str, Any]) -> str:
    """The text of a manifest line: `source`, or the UTF-8 object `source-ref` names."""
    if "source" in record:
        text = record["source"]
        if not isinstance(text, str):
            raise ValueError(f"'source' must be a string, got {type(text).__name__}")
        return text
    ref = record.get("source-ref")
    if isinstance(ref, str) and ref:
        data = object_loader.read_bytes(ref)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{ref} is not UTF-8 text ({exc.reason})") from None
    raise ValueError("missing 'source' (the text) or 'source-ref' (an s3:// URI or file path of the text)")


@dataclass
class TextModel:
    """What model.joblib holds: the pipeline (None when training had one class) and the class map."""

    num_classes: int
    classes: list[int]  # class index of each pipeline output column, ascending
    pipeline: Pipeline | None
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """Plain data for joblib (no class of ours is pickled, so loading needs only scikit-learn)."""
        return {"format_version": 1, "num_classes": self.num_classes, "classes": list(self.classes),
                "pipeline": self.pipeline, "temperature": float(self.temperature), "info": dict(self.info)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TextModel":
        return cls(int(state["num_classes"]), [int(c) for c in state["classes"]], state["pipeline"],
                   float(state.get("temperature", 1.0)), dict(state.get("info") or {}))

    def log_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Log-probabilities over the trained classes, shape (N, len(classes))."""
        if self.pipeline is None:
            return np.zeros((len(texts), 1))
        with np.errstate(divide="ignore"):
            return np.asarray(self.pipeline.predict_log_proba(list(texts)), dtype=np.float64)

    def expand(self, column_probs: np.ndarray) -> np.ndarray:
        out = np.zeros((len(column_probs), self.num_classes))
        out[:, self.classes] = column_probs
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities over all K classes, shape (N, K), rows summing to 1."""
        if not len(texts):
            return np.zeros((0, self.num_classes))
        scores = self.log_scores(texts)
        return self.expand(temperature_scaling.softmax(np.maximum(scores, -1e4), self.temperature))
