"""ImageNet scale on a generated folder: the ImageNet-layout ResNet-18, the image-folder loader
(batches and per-example augmentation reproducible from seed, step and position alone, whatever
the worker count or the split of a batch across processes) and a one-step training run."""

import math

import pytest
import torch
from torch import nn

from nmnc.data import load_dataset
from nmnc.data.folder import crop_box, example_seed
from nmnc.data.synthetic import make_image_folder
from nmnc.errors import run_cli
from nmnc.models import build_model
from nmnc.train import list_all
from nmnc.train import main as train_main


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root holding imagenet/: 3 classes x 4 JPEGs (256x224) in train/ and in val/."""
    base = tmp_path_factory.mktemp("data")
    make_image_folder(base / "imagenet", classes=3, per_class=4, size=(256, 224))
    return base


@pytest.fixture(scope="module")
def data(root):
    return load_dataset("imagenet", root)


def batches(*steps):
    """(step, indices) pairs: the same four examples at every given step."""
    return [(s, torch.tensor([0, 5, 6, 11])) for s in steps]


def test_imagenet_loads_a_generated_folder(data):
    assert data.classes == ["c000", "c001", "c002"] and data.input_size == 224
    assert len(data.train) == len(data.test) == 12
    x, y = next(data.train.loader(batches(0), True, 0, num_workers=0))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.tolist() == [0, 1, 1, 2]
    assert -3 < x.mean() < 3 and 0.2 < x.std() < 3  # normalised
    # the validation split is never augmented: the center crop whatever the flag
    (a, _), (b, _) = [next(data.test.loader(batches(0), aug, 0, num_workers=0)) for aug in (1, 0)]
    assert torch.equal(a, b)


def test_batches_are_the_same_for_any_worker_count(data):
    plan = batches(0, 1, 2)
    zero = list(data.train.loader(plan, True, 7, num_workers=0))
    two = list(data.train.loader(plan, True, 7, num_workers=2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(zero, two))
    # a plan that starts later (a resumed run) sees the same batch for the same step
    (late, _), *_ = data.train.loader(plan[2:], True, 7, num_workers=0)
    assert torch.equal(late, zero[2][0])
    # another step or seed draws other crops
    assert not torch.equal(zero[0][0], zero[1][0])
    (other, _), *_ = data.train.loader(plan[:1], True, 8, num_workers=0)
    assert not torch.equal(other, zero[0][0])


def test_an_example_is_augmented_by_step_and_position_alone(data):
    whole, _ = next(data.train.loader(batches(3), True, 0, num_workers=0))
    # the global batch split across two or four processes: the same pixels for every example
    for world in (2, 4):
        count = 4 // world
        parts = [
            next(data.train.loader(batches(3), True, 0, num_workers=0, part=(r * count, count)))[0]
            for r in range(world)
        ]
        assert torch.equal(torch.cat(parts), whole)
    # the augmentation follows the position, not the example: swap the first two examples
    swapped, _ = next(data.train.loader([(3, torch.tensor([5, 0, 6, 11]))], True, 0, num_workers=0))
    assert torch.equal(swapped[2:], whole[2:]) and not torch.equal(swapped[1], whole[0])


def test_example_seeds_differ_and_crops_stay_in_bounds():
    seeds = {example_seed(s, t, p) for s in range(3) for t in range(50) for p in range(64)}
    assert len(seeds) == 3 * 50 * 64 and max(seeds) < 2**63
    for width, height in ((500, 375), (224, 224), (1000, 12), (12, 1000)):
        for i in range(50):
            gen = torch.Generator().manual_seed(example_seed(0, 0, i))
            left, top, right, bottom = crop_box(width, height, gen)
            w, h = right - left, bottom - top
            assert 0 <= left < right <= width and 0 <= top < bottom <= height
            if width == 500:  # a random crop: 8-100% of the area, aspect ratio 3/4 to 4/3
                assert 0.07 < w * h / (width * height) <= 1
                assert math.log(3 / 4) - 0.02 < math.log(w / h) < math.log(4 / 3) + 0.02


def test_resnet18_has_the_imagenet_layout_and_a_hidden_layer_per_convolution():
    model = build_model("resnet18", width=0.125).eval()
    assert model.stage_names == build_model("resnet", width=0.125).stage_names
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(model.hidden_layers) == 20  # stem, 16 block convs, 3 shortcuts
    assert {n.split(".")[0] for n in convs} == set(model.hidden_layers)
    assert model.stem[0].kernel_size == (7, 7) and model.stem[0].stride == (2, 2)
    assert isinstance(model.stem[3], nn.MaxPool2d)
    shapes = model.layer_shapes()
    assert shapes["stem"] == (8, 56, 56) and shapes["layer4_1b"] == (64, 7, 7)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
    listing = list_all()
    assert "resnet18   (image, 224 px)" in listing and "resnet     (image, 32 px)" in listing


def test_bp_trains_resnet18_on_the_folder(root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", "resnet18", "--set", "width=0.125", "--dataset", "imagenet"]
    argv += ["--data-root", str(root), "--steps", "1", "--batch-size", "4", "--rule", "bp"]
    argv += ["--out", str(out), "--quiet", "--set", "num_workers=2"]
    assert run_cli(train_main, argv, prog="nmnc.train") == 0, capsys.readouterr().err
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["model"]["name"] == "resnet18" and raw["model"]["settings"]["num_classes"] == 3
    assert raw["step"] == 1 and raw["data"]["input_size"] == 224


def test_read_image_falls_back_to_pil(tmp_path):
    """Formats torchvision does not decode (here BMP) are read by PIL, as the same pixels."""
    import numpy as np
    from PIL import Image

    from nmnc.data.folder import read_image

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.bmp")
    assert torch.equal(
        read_image(str(tmp_path / "x.bmp")), torch.from_numpy(pixels).permute(2, 0, 1)
    )
