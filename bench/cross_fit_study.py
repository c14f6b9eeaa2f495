"""Cross-fitting at the first gate: what it would certify, and whether its bound holds.

    python bench/cross_fit_study.py --reps 200 --batch 200

The loop's first batch is a uniform random draw. Today half of it trains the model and half
validates it. Cross-fitting would train two models, one on each half, judge each on the half it
did not see, and pool both verdicts: twice the validation items for the same training-set size.
An item of the pool is judged by one of the two models, picked at random, so the pooled
verdicts stand for the pooled auto-labels, as long as the two folds' error counts behave like
independent draws. They are not independent in principle (each model trained on the other's
validation fold), so this study measures it, on real texts and the product's own text model,
over many random first batches:

- **split** (the product): model A trains on fold A, fold B validates it; the product's
  `calibrate_threshold` picks the threshold; the pool (every item outside the batch) is judged
  by model A.
- **cross-fit**: models A and B; fold B judged by A and fold A by B, pooled into one validation
  set; the same `calibrate_threshold`; each pool item judged by a randomly assigned model. The
  two models' confidences are put on one scale either by their temperatures (fitted on the
  validation folds, so the scale reads labels) or by ranking each among the pool's confidences
  under the same model (reads none).
- each also with the fixed sequence starting at the smallest passing support (59 at 95 %/95 %)
  whatever the count, and the split with both starts at half the error rate each.

For each it prints how much of the pool the first gate certifies, the auto-labels' accuracy
against the truth, how often it missed the target (with a 95 % interval), and, at fixed
thresholds, how far the validation estimate strays from the truth in units of the binomial
standard error: a spread above 1 would say the pooled count is not binomial and the bound's
assumption fails.

The text model is the product's (`algorithms/text_classification/text_model.py`), rebuilt from
count matrices computed once (the TF-IDF of a training set is a column slice of the corpus's
counts, reweighted), so that a repetition takes seconds instead of a minute; `--check` compares
it with the product's pipeline on one batch.

Measured: docs/fewer-labels.md, "Cross-fitting at the first gate".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench", ROOT / "algorithms" / "common", ROOT / "algorithms" / "text_classification"):
    sys.path.insert(0, str(folder))

from compare_policies import prepare  # noqa: E402
from promise_study import exact_interval  # noqa: E402
import temperature_scaling  # noqa: E402
from text_model import build_pipeline  # noqa: E402

from labelloop import calibration  # noqa: E402
from labelloop.calibration import calibrate_threshold  # noqa: E402

# The product's text hyperparameters (algorithms/text_classification/train.py defaults).
HP = {"word-ngram-max": 2, "char-ngram-min": 2, "char-ngram-max": 5, "min-df": 1, "max-features": 300_000,
      "regularization-c": 1000.0, "max-iter": 1000, "class-weight": "none", "seed": 0}


def load(data: Path, dataset: str) -> tuple[list[str], np.ndarray]:
    manifest, truth, _, task_type, names, _ = prepare(dataset, data, 0)
    if task_type != "text-classification":
        raise SystemExit(f"{dataset} is a {task_type} dataset; this study uses the text model")
    texts = [json.loads(line)["source"] for line in open(manifest)]
    labels = np.array([names.index(json.loads(line)["label"]) for line in open(truth)])
    return texts, labels


def corpus_counts(texts: list[str], cache: Path) -> list[sp.csr_matrix]:
    """Raw n-gram counts of every text, one matrix per analyzer of the product's FeatureUnion."""
    files = [cache / "word.npz", cache / "char.npz"]
    if all(f.exists() for f in files):
        return [sp.load_npz(f).tocsr() for f in files]
    cache.mkdir(parents=True, exist_ok=True)
    word = CountVectorizer(analyzer="word", ngram_range=(1, HP["word-ngram-max"]), token_pattern=r"(?u)\b\w+\b",
                           lowercase=True, dtype=np.float32)
    char = CountVectorizer(analyzer="char_wb", ngram_range=(HP["char-ngram-min"], HP["char-ngram-max"]),
                           lowercase=True, dtype=np.float32)
    out = []
    for vectorizer, f in zip((word, char), files):
        counts = vectorizer.fit_transform(texts).tocsr()
        sp.save_npz(f, counts)
        out.append(counts)
    return out


def features(counts: list[sp.csr_matrix], train: np.ndarray) -> sp.csr_matrix:
    """Every text's TF-IDF as the product's vectorizers fitted on `train` would give it."""
    blocks = []
    n = len(train)
    for c in counts:
        sub = c[train]
        df = np.asarray((sub > 0).sum(axis=0)).ravel()
        cols = np.nonzero(df)[0]
        if len(cols) > HP["max-features"]:
            tf = np.asarray(sub.sum(axis=0)).ravel()[cols]
            cols = np.sort(cols[np.argsort(-tf, kind="stable")[: HP["max-features"]]])
        idf = np.log((1.0 + n) / (1.0 + df[cols])) + 1.0
        x = c[:, cols].tocsr(copy=True)
        x.data = 1.0 + np.log(x.data)
        blocks.append(normalize(x @ sp.diags(idf.astype(np.float32)), norm="l2"))
    return sp.hstack(blocks).tocsr()


def fit(counts, labels, train: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
    """Probabilities of every text under a model trained on `train`, its temperature fitted on `held_out`."""
    x = features(counts, train)
    model = LogisticRegression(C=HP["regularization-c"], max_iter=HP["max-iter"], random_state=HP["seed"])
    model.fit(x[train], labels[train])
    with np.errstate(divide="ignore"):
        logits = np.full((x.shape[0], k), -1e4)
        logits[:, model.classes_] = np.maximum(model.predict_log_proba(x), -1e4)
    t = temperature_scaling.fit_temperature(logits[held_out], labels[held_out], min_t=0.2)
    return temperature_scaling.softmax(logits, t)


def threshold(conf_val, right_val, target: float, confidence: float, small_start: bool = False) -> float | None:
    """The product's threshold; with `small_start` the fixed sequence starts where every item must
    be right (the start the product uses below its usual starting support), whatever the count."""
    start = calibration.start_for(target, confidence, 0) if small_start else None
    return calibrate_threshold(conf_val, right_val, target_accuracy=target, confidence_level=confidence, start=start).threshold


def certify(conf_val, right_val, conf_pool, right_pool, args, small_start: bool = False, two_starts: bool = False) -> dict:
    """The first gate's certificate. `two_starts`: both starts, each at half the error rate, the
    lower threshold either certifies (valid: the chance that either is wrong is at most the sum)."""
    if two_starts:
        level = 1 - (1 - args.confidence) / 2
        found = [t for t in (threshold(conf_val, right_val, args.target, level, small) for small in (True, False))
                 if t is not None]
        cut = min(found) if found else None
    else:
        cut = threshold(conf_val, right_val, args.target, args.confidence, small_start)
    auto = conf_pool >= cut if cut is not None else np.zeros(len(conf_pool), bool)
    n = int(auto.sum())
    return {"share": n / len(conf_pool), "accuracy": float(right_pool[auto].mean()) if n else None,
            "missed": bool(n and right_pool[auto].mean() < args.target)}


def strays(conf_val, right_val, conf_pool, right_pool) -> list[float]:
    """(validation accuracy − pool accuracy) / binomial standard error, at the validation's
    confidence quantiles (each quantile's items at or above it)."""
    out = []
    for q in (0.2, 0.5, 0.8):
        t = np.quantile(conf_val, q)
        v, p = right_val[conf_val >= t], right_pool[conf_pool >= t]
        acc = p.mean()
        if len(v) and 0 < acc < 1:
            out.append((v.mean() - acc) / np.sqrt(acc * (1 - acc) / len(v)))
    return out


def repetition(counts, labels, k, rep: int, args) -> dict:
    rng = np.random.default_rng([args.seed, rep])
    order = rng.permutation(len(labels))
    half = args.batch // 2
    a, b, pool = np.sort(order[:half]), np.sort(order[half:args.batch]), np.sort(order[args.batch:])
    prob_a = fit(counts, labels, a, b, k)
    prob_b = fit(counts, labels, b, a, k)
    conf_a, right_a = prob_a.max(1), prob_a.argmax(1) == labels
    conf_b, right_b = prob_b.max(1), prob_b.argmax(1) == labels
    split = (conf_a[b], right_a[b], conf_a[pool], right_a[pool])
    by_a = rng.random(len(pool)) < 0.5
    cross = (np.r_[conf_a[b], conf_b[a]], np.r_[right_a[b], right_b[a]],
             np.where(by_a, conf_a[pool], conf_b[pool]), np.where(by_a, right_a[pool], right_b[pool]))
    # Each model's confidence as its rank among the pool's confidences under that model: a scale
    # read off unlabeled items only, where the temperatures were fitted on the validation labels.
    rank_a, rank_b = pool_rank(conf_a, conf_a[pool]), pool_rank(conf_b, conf_b[pool])
    ranked = (np.r_[rank_a[b], rank_b[a]], cross[1], np.where(by_a, rank_a[pool], rank_b[pool]), cross[3])
    arms = {"split": split, "cross": cross, "ranked": ranked}
    return {"rep": rep, **{arm: certify(*data, args) for arm, data in arms.items()},
            "split_small_start": certify(*split, args, small_start=True),
            "split_two_starts": certify(*split, args, two_starts=True),
            "ranked_small_start": certify(*ranked, args, small_start=True),
            **{f"{arm}_z": strays(*data) for arm, data in arms.items()}}


def pool_rank(conf: np.ndarray, pool_conf: np.ndarray) -> np.ndarray:
    """The share of the pool's confidences at or below each of `conf` (the pool's empirical CDF)."""
    return np.searchsorted(np.sort(pool_conf), conf, side="right") / len(pool_conf)


def report(rows: list[dict], args) -> str:
    lines = [f"{args.dataset}, first batch {args.batch} (two folds of {args.batch // 2}), target {args.target:.0%}, "
             f"confidence {args.confidence:.0%}, {len(rows)} random first batches", "",
             "| first gate | validation items | certifies something | pool certified (mean) | auto-label accuracy "
             "(mean) | misses | miss rate, 95 % interval | (estimate − truth) / SE: mean, spread |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"split": "split (the product)", "cross": "cross-fit, temperature-scaled confidence",
             "ranked": "cross-fit, confidence ranked within the pool",
             "ranked_small_start": "the same, the test starting where every item must be right",
             "split_small_start": "split, the test starting where every item must be right",
             "split_two_starts": "split, both starts at half the error rate each, the lower threshold"}
    for arm, n_val in (("split", args.batch // 2), ("split_small_start", args.batch // 2),
                       ("split_two_starts", args.batch // 2), ("cross", args.batch),
                       ("ranked", args.batch), ("ranked_small_start", args.batch)):
        if arm not in rows[0]:  # an arm added after these batches were drawn
            continue
        res = [r[arm] for r in rows]
        some = [r for r in res if r["share"] > 0]
        misses = sum(r["missed"] for r in res)
        lo, hi = exact_interval(misses, len(res))
        base = arm.replace("_small_start", "").replace("_two_starts", "")
        z = np.concatenate([r[f"{base}_z"] for r in rows]) if rows else np.zeros(0)
        acc = f"{np.mean([r['accuracy'] for r in some]):.2%}" if some else "—"
        lines.append(f"| {names[arm]} | {n_val} | {len(some)} of {len(res)} | "
                     f"{np.mean([r['share'] for r in res]):.1%} | {acc} | {misses} | {lo:.1%}–{hi:.1%} | "
                     f"{z.mean():+.2f}, {z.std():.2f} |")
    return "\n".join(lines)


def check(texts, labels, counts, k: int) -> None:
    """The study's rebuilt model against the product's pipeline, on one random batch."""
    rng = np.random.default_rng(0)
    train, rest = np.sort(rng.permutation(len(texts))[:100]), np.arange(len(texts))
    pipeline = build_pipeline(HP).fit([texts[i] for i in train], labels[train])
    sample = rng.choice(rest, 300, replace=False)
    theirs = pipeline.predict_proba([texts[i] for i in sample])
    x = features(counts, train)
    ours = LogisticRegression(C=HP["regularization-c"], max_iter=HP["max-iter"], random_state=HP["seed"])
    ours = ours.fit(x[train], labels[train]).predict_proba(x[sample])
    print(f"largest probability difference on 300 texts: {np.abs(theirs - ours).max():.2e}; "
          f"same predicted class: {np.mean(theirs.argmax(1) == ours.argmax(1)):.1%}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="spamassassin")
    ap.add_argument("--batch", type=int, default=200, help="first batch size, split into two equal folds")
    ap.add_argument("--reps", type=int, default=200, help="random first batches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--data", type=Path, default=Path("bench-data"))
    ap.add_argument("--work", type=Path, default=Path("bench-work/cross-fit"), help="count matrices and results")
    ap.add_argument("--check", action="store_true", help="compare the rebuilt model with the product's pipeline first")
    args = ap.parse_args(argv)
    if args.batch < 4 or args.batch % 2:
        raise SystemExit(f"--batch must be an even number of at least 4, got {args.batch}")
    texts, labels = load(args.data, args.dataset)
    k = int(labels.max()) + 1
    started = time.time()
    counts = corpus_counts(texts, args.work / args.dataset)
    print(f"counts ready in {time.time() - started:.0f}s: {[c.shape[1] for c in counts]} n-grams", flush=True)
    if args.check:
        check(texts, labels, counts, k)
    results = args.work / f"{args.dataset}-b{args.batch}-s{args.seed}.jsonl"
    done = [json.loads(line) for line in results.open()] if results.exists() else []
    with results.open("a") as out:
        for rep in range(len(done), args.reps):
            row = repetition(counts, labels, k, rep, args)
            out.write(json.dumps(row) + "\n")
            out.flush()
            done.append(row)
            if rep % 10 == 9:
                print(f"{rep + 1} batches, {time.time() - started:.0f}s", flush=True)
    print(report(done[: args.reps], args))


if __name__ == "__main__":
    main()
