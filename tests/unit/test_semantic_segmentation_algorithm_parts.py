"""The semantic-segmentation algorithm's parts, no training: reply bound, upsampling, confidence, regions, masks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from algorithm_helpers import import_from
from segmentation_algorithm_helpers import COLORS, source_dir


def test_the_reply_line_bound_holds_for_the_least_compressible_mask(tmp_path):
    src = source_dir(tmp_path)
    inference, names = import_from(src, "inference"), import_from(src, "confidence").NAMES
    rng = np.random.default_rng(0)
    for width, height in ((128, 128), (96, 80), (640, 480)):
        worst = rng.integers(0, 256, (height, width)).astype(np.uint8)
        frame = {"confidence": 0.1234, "confidences": {name: 0.1234 for name in names}}
        line = json.dumps({"mask": inference.encode_mask(worst), **frame}, separators=(",", ":")) + "\n"
        bound = inference.reply_line_bound(width, height)
        assert len(line) <= bound < 1.1 * len(line)


def test_masks_are_upsampled_to_the_image_class_by_class(tmp_path):
    inference = import_from(source_dir(tmp_path), "inference")
    small = np.zeros((4, 4), np.uint8)
    small[:, :2], small[3, 3] = 1, 2  # left half class 1, one corner pixel class 2
    mask = inference.full_size_mask(small, 200, 100)
    assert mask.shape == (100, 200) and mask.dtype == np.uint8
    assert (mask[:, :90] == 1).all() and (mask[:60, 110:] == 0).all() and mask[99, 199] == 2


def test_gt_image_iou_and_the_confidence_candidates(tmp_path):
    confidence = import_from(source_dir(tmp_path), "confidence")
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    a[:2, :2], b[:2, :1], b[3, 3] = 1, 1, 2  # class 1: IoU 2/4; class 2 only in b: 0; background not counted
    assert confidence.image_iou(a, b) == pytest.approx(0.25)
    assert confidence.image_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    sure = np.zeros((3, 8, 8), np.float32)
    sure[0], sure[1, 2:5, 2:5], sure[0, 2:5, 2:5] = 0.99, 0.99, 0.01
    sure[2] = 0.01
    masks, (values,) = confidence.assess(sure[None], sure[None])
    assert masks[0].tolist() == (sure.argmax(0)).tolist()
    assert tuple(values) == confidence.NAMES and confidence.DEFAULT in values
    assert all(v > 0.9 for v in values.values()), values
    unsure = sure.copy()
    unsure[1, 2:5, 2:5], unsure[0, 2:5, 2:5], unsure[2, 2:5, 2:5] = 0.5, 0.1, 0.4
    mirrored = sure.copy()
    mirrored[1, 2:5, 2:5], mirrored[0, 2:5, 2:5] = 0.01, 0.99  # the mirror sees nothing there
    _, (doubtful,) = confidence.assess(unsure[None], mirrored[None])
    assert all(doubtful[name] < values[name] for name in confidence.NAMES), doubtful
    assert doubtful["flip-agreement"] == 0.0


def test_each_object_gets_the_class_most_probable_over_it(tmp_path):
    regions = import_from(source_dir(tmp_path), "regions")
    probs = np.zeros((4, 6, 10), np.float32)
    probs[0] = 0.9
    probs[1:, :, :] = 0.1 / 3
    # an object at columns 0-3 torn between classes 1 and 2 pixel by pixel, 2 ahead in all; a
    # diagonal neighbour of it at (4, 4) belongs to it; one at columns 7-9 is 3, doubtfully.
    probs[:, 0:4, 0:4] = np.array([0.1, 0.4, 0.3, 0.2])[:, None, None]
    probs[:, 0:2, 0:4] = np.array([0.1, 0.3, 0.45, 0.15])[:, None, None]
    probs[:, 4, 4] = (0.2, 0.1, 0.6, 0.1)
    probs[:, 2:5, 7:10] = np.array([0.4, 0.2, 0.1, 0.3])[:, None, None]
    mask = regions.decode(probs[None])[0]
    assert (mask[0:4, 0:4] == 2).all() and mask[4, 4] == 2
    assert (mask[2:5, 7:10] == 3).all()
    assert mask.sum() == 2 * 17 + 3 * 9
    assert not regions.decode(np.stack([np.full((3, 3), 0.6), np.full((3, 3), 0.4)])[None]).any()
    touching = np.zeros((4, 2, 6), np.float32)
    touching[0], touching[1, :, :3], touching[3, :, 3:] = 0.1, 0.85, 0.85  # two objects told apart with confidence
    touching[2] = 0.05
    assert regions.decode(touching[None])[0].tolist() == [[1, 1, 1, 3, 3, 3]] * 2
    labels = regions.components(np.array([[[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]]], bool))[0]
    assert len(np.unique(labels[labels > 0])) == 4 and labels[0, 0] == labels[1, 1] and labels[3, 0] == labels[3, 1]
    snake = np.zeros((1, 64, 64), bool)
    snake[0, ::2], snake[0, :, 0] = True, True  # one region 2,000 pixels long
    assert len(np.unique(regions.components(snake)[snake])) == 1


def test_objects_are_each_classes_connected_regions_framed_by_squares(tmp_path):
    region_head = import_from(source_dir(tmp_path), "region_head")
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 0:2, 0:3] = 1  # touching the next one, but another class: two objects
    masks[0, 0:2, 3:5], masks[0, 2, 5] = 2, 2  # a diagonal neighbour belongs to its object
    masks[1, 5:7, 1:3], masks[1, 5, 6] = 1, 1  # one class, two objects
    objects = region_head.Objects(masks)
    found = sorted(zip(objects.owner.tolist(), objects.cls.tolist(), objects.pixels.tolist()))
    assert found == [(0, 1, 6), (0, 2, 5), (1, 1, 1), (1, 1, 4)]
    for j in range(len(objects)):
        region = objects.ids == j + 1
        assert region[objects.owner[j]].sum() == objects.pixels[j] and (masks[region] == objects.cls[j]).all()
    (j,) = [j for j in range(len(objects)) if objects.cls[j] == 2]
    assert objects.frames[j].tolist() == pytest.approx([4.5, 1.5, 3 * region_head.CONTEXT])  # 3 x 3 around columns 3-5, rows 0-2
    assert len(region_head.Objects(np.zeros((1, 4, 4), np.uint8))) == 0


def test_the_region_head_renames_an_object_the_unet_doubts_but_not_one_it_is_sure_of(tmp_path):
    import torch

    region_head = import_from(source_dir(tmp_path), "region_head")
    head = region_head.build(region_head.architecture(1, 3, 4)).eval()
    with torch.no_grad():  # a head that says "class 1" with 0.8 whatever it sees
        head.classes.weight.zero_()
        head.classes.bias.copy_(torch.log(torch.tensor([0.8, 0.1, 0.1])))
    probs = np.zeros((1, 4, 8, 12), np.float32)
    probs[0, 0] = 0.97
    probs[0, 1:] = 0.01
    probs[0, :, 1:5, 1:5] = np.array([0.1, 0.27, 0.36, 0.27])[:, None, None]  # doubtful; class 2 ahead
    probs[0, :, 2:6, 7:11] = np.array([0.1, 0.01, 0.01, 0.88])[:, None, None]  # sure of class 3
    masks = np.zeros((1, 8, 12), np.uint8)
    masks[0, 1:5, 1:5], masks[0, 2:6, 7:11] = 2, 3
    images = torch.zeros((1, 1, 8, 12))
    relabeled, mixed = region_head.relabel(head, images, masks, probs)
    assert (relabeled[0, 1:5, 1:5] == 1).all() and (relabeled[0, 2:6, 7:11] == 3).all()
    assert (relabeled[0][masks[0] == 0] == 0).all()
    assert np.allclose(mixed[:, 1:].sum(axis=1)[masks > 0], 1 - probs[:, 0][masks > 0], atol=1e-5)
    assert np.array_equal(mixed[:, :, masks[0] == 0], probs[:, :, masks[0] == 0])  # background pixels untouched
    assert mixed[0, 1, 2, 2] > 0.5 * 0.9 and mixed[0, 3, 3, 8] > 0.5 * 0.9


def test_rgb_masks_are_read_by_the_color_map_and_unusable_masks_are_explained(tmp_path):
    mask_labels = import_from(source_dir(tmp_path), "mask_labels")
    colors = mask_labels.color_map({"internal-color-map": COLORS}, 2)
    rgb = np.zeros((2, 3, 3), np.uint8) + 255
    rgb[0, 0], rgb[1, 2] = (255, 0, 0), (0, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    assert mask_labels.decode_mask(buffer.getvalue(), 2, colors).tolist() == [[1, 0, 0], [0, 0, 2]]
    rgb[0, 1] = (1, 2, 3)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    with pytest.raises(ValueError, match="colours not in the internal-color-map: #010203"):
        mask_labels.decode_mask(buffer.getvalue(), 2, colors)
    buffer = io.BytesIO()
    Image.new("I;16", (2, 2)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="expected a one-channel PNG"):
        mask_labels.decode_mask(buffer.getvalue(), 2, colors)
    with pytest.raises(ValueError, match="is not a decodable image"):
        mask_labels.decode_mask(b"not a png", 2, colors)
    with pytest.raises(ValueError, match="internal-color-map has class 7, out of range for num-classes=2"):
        mask_labels.color_map({"internal-color-map": {**COLORS, "7": {"class-name": "extra"}}}, 2)
    assert mask_labels.mask_keys("label") == ("label", "label-ref") and mask_labels.mask_keys("label-ref") == ("label-ref",)
    line = {"label-ref": "x.png", "label-ref-metadata": {"a": 1}, "label-metadata": {"b": 2}}
    assert mask_labels.metadata_of(line, "label-ref") == {"a": 1}
    del line["label-ref-metadata"]
    assert mask_labels.metadata_of(line, "label-ref") == {"b": 2}
