"""bench/cross_fit_study.py rebuilds the product's text model from corpus counts; it must be the same model."""

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from cross_fit_study import HP, corpus_counts, features, pool_rank  # noqa: E402
from text_model import build_pipeline  # noqa: E402  (cross_fit_study puts the algorithm folders on the path)

SPAM = ["win cash now", "cheap pills online", "you won a prize, claim now", "free money!!! click", "lowest price pills"]
HAM = ["meeting moved to friday", "patch for the build script", "lunch tomorrow?", "the report is attached",
       "see the diff in the review"]


def test_the_rebuilt_model_gives_the_product_pipeline_s_probabilities(tmp_path):
    texts = SPAM + HAM + ["claim your free prize", "build fails on friday", "cheap cash now", "attached the diff"]
    labels = np.array([1] * 5 + [0] * 5 + [1, 0, 1, 0])
    train = np.array([0, 1, 2, 5, 6, 7])  # the others' n-grams partly unseen in training, as in the pool
    product = build_pipeline(HP).fit([texts[i] for i in train], labels[train]).predict_proba(texts)
    x = features(corpus_counts(texts, tmp_path), train)
    rebuilt = LogisticRegression(C=HP["regularization-c"], max_iter=HP["max-iter"], random_state=HP["seed"])
    rebuilt = rebuilt.fit(x[train], labels[train]).predict_proba(x)
    assert np.abs(product - rebuilt).max() < 1e-5


def test_a_pool_rank_orders_like_the_confidence_and_reads_no_labels():
    pool = np.array([0.6, 0.9, 0.7, 0.99])
    ranks = pool_rank(np.array([0.5, 0.6, 0.8, 0.99, 1.0]), pool)
    assert ranks.tolist() == [0.0, 0.25, 0.5, 1.0, 1.0]
