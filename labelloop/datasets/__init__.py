"""Dataset preparers: public datasets -> Ground Truth input manifests plus hidden truth.

Each preparer writes into a folder `out`:

    out/manifest.jsonl   input manifest, one {"source-ref": "/abs/path.png"} or {"source": "text"} a line
    out/truth.jsonl      {"key": item_key(line), "label": class name} a line; read only by the
                         simulated annotators and the evaluation, never by the labeling run
                         (fashion-mnist-detection and -segmentation: truth.manifest, a Ground Truth
                         output manifest; the masks' PNGs in out/masks/)
    out/labels.json      Ground Truth label category config, classes in class-index order
    out/images/          PNGs of image datasets

Re-running a preparer into the same folder rewrites all of it consistently (temp files, then
renames); output is deterministic given the seed.
"""

from labelloop.datasets.common import PreparedDataset, load_truth, read_label_config
from labelloop.datasets.digits import prepare_digits
from labelloop.datasets.fashion_mnist import prepare_fashion_mnist
from labelloop.datasets.fashion_mnist_detection import prepare_fashion_mnist_detection
from labelloop.datasets.fashion_mnist_segmentation import prepare_fashion_mnist_segmentation
from labelloop.datasets.spamassassin import prepare_spamassassin

PREPARERS = {
    "digits": prepare_digits,
    "fashion-mnist": prepare_fashion_mnist,
    "fashion-mnist-detection": prepare_fashion_mnist_detection,
    "fashion-mnist-segmentation": prepare_fashion_mnist_segmentation,
    "spamassassin": prepare_spamassassin,
}

__all__ = [
    "PREPARERS",
    "PreparedDataset",
    "load_truth",
    "prepare_digits",
    "prepare_fashion_mnist",
    "prepare_fashion_mnist_detection",
    "prepare_fashion_mnist_segmentation",
    "prepare_spamassassin",
    "read_label_config",
]
