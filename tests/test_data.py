import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nmnc.data import load_dataset
from nmnc.data.archive import safe_extract
from nmnc.data.download import fetch
from nmnc.data.splits import balanced_subset, random_crop_flip
from nmnc.errors import DataError, UnknownNameError


def test_cifar10_zip_loads_real_images(cifar):
    assert len(cifar.train) == 50_000 and len(cifar.test) == 10_000
    assert (
        cifar.train.images.shape == (50_000, 32, 32, 3) and cifar.train.images.dtype == torch.uint8
    )
    counts = torch.bincount(cifar.test.labels, minlength=10)
    assert counts.tolist() == [1000] * 10
    # real photographs: pixel statistics near the published CIFAR-10 means
    sample = cifar.train.images[
        torch.randperm(50_000, generator=torch.Generator().manual_seed(0))[:5000]
    ]
    mean = sample.float().mean((0, 1, 2)) / 255
    assert torch.allclose(mean, torch.tensor(cifar.mean), atol=0.02)


def test_batches_are_normalised_and_reproducible(cifar):
    idx = torch.randperm(50_000, generator=torch.Generator().manual_seed(1))[:256]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x1, y1 = cifar.train.batch(idx, True, g1)
    x2, _ = cifar.train.batch(idx, True, g2)
    assert x1.shape == (256, 3, 32, 32) and torch.equal(x1, x2)
    x0, _ = cifar.train.batch(idx, False, None)
    assert abs(x0.mean().item()) < 0.3 and 0.7 < x0.std().item() < 1.3
    assert torch.equal(y1, cifar.train.labels[idx])


def test_crop_flip_keeps_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = random_crop_flip(x, pad=0, gen=torch.Generator().manual_seed(0))
    for i in range(2):  # with no padding the crop is the image, possibly mirrored
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


def test_balanced_subset_is_seeded_and_balanced():
    labels = torch.arange(10).repeat(100)
    a, b = balanced_subset(labels, 205, 1), balanced_subset(labels, 205, 1)
    assert torch.equal(a, b) and len(a) == 205
    counts = torch.bincount(labels[a], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert not torch.equal(a, balanced_subset(labels, 205, 2))


def _write_tree(cifar, root: Path, per_class: int = 3):
    for split, data in (("train", cifar.train), ("test", cifar.test)):
        for c, name in enumerate(cifar.classes):
            d = root / "cifar10" / split / name
            d.mkdir(parents=True)
            for j, i in enumerate(torch.nonzero(data.labels == c).flatten()[:per_class]):
                Image.fromarray(data.images[i].numpy()).save(d / f"{j:04d}.png")


def test_image_folder_tree_and_zip(cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    _write_tree(cifar, tmp_path / "tree")
    ds = load_dataset("cifar10", tmp_path / "tree")
    assert len(ds.train) == 30 and len(ds.test) == 30
    # PNG is lossless, so the tree reproduces the original pixels
    assert torch.equal(
        ds.test.images[0], cifar.test.images[torch.nonzero(cifar.test.labels == 0)[0, 0]]
    )
    zdir = tmp_path / "zipped" / "cifar10"
    zdir.mkdir(parents=True)
    with zipfile.ZipFile(zdir / "c.zip", "w") as zf:
        for p in sorted((tmp_path / "tree" / "cifar10").rglob("*.png")):
            zf.write(p, "cifar-10-images/" + str(p.relative_to(tmp_path / "tree" / "cifar10")))
    dz = load_dataset("cifar10", tmp_path / "zipped")
    assert torch.equal(dz.train.images, ds.train.images) and torch.equal(
        dz.train.labels, ds.train.labels
    )


def test_missing_data_names_dataset_and_place(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path)
    msg = str(e.value)
    assert msg.startswith("cifar10:") and str(tmp_path / "cifar10") in msg and "--download" in msg
    with pytest.raises(DataError, match="imagenet: no train/ and val/"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'cifar10'"):
        load_dataset("cifar-10", tmp_path)


def test_broken_zip_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_never_writes_outside_target(tmp_path, bad):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(bad, "evil")
    with pytest.raises(DataError, match="unsafe path"):
        safe_extract(z, tmp_path / "out" / "target")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "target").exists()
    # reading such a zip in place is refused too
    (tmp_path / "root" / "cifar10").mkdir(parents=True)
    z.rename(tmp_path / "root" / "cifar10" / "bad.zip")
    with pytest.raises(DataError, match="unsafe path"):
        load_dataset("cifar10", tmp_path / "root")


def test_imagenet_folder(cifar, tmp_path):
    for split in ("train", "val"):
        for c in ("n01", "n02"):
            d = tmp_path / "imagenet" / split / c
            d.mkdir(parents=True)
            for j in range(4):
                Image.fromarray(cifar.train.images[j + (c == "n02") * 10].numpy()).resize(
                    (64, 64)
                ).save(d / f"{j}.JPEG")
    ds = load_dataset("imagenet", tmp_path, input_size=48)
    assert ds.classes == ["n01", "n02"] and len(ds.train) == 8
    x, y = next(ds.train.loader([(0, torch.arange(4))], True, 0, num_workers=0))
    assert x.shape == (4, 3, 48, 48) and y.tolist() == [0, 0, 0, 0]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture()
def http_dir(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(served), **k)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield served, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_download_verifies_checksum_and_is_atomic(http_dir, tmp_path):
    served, url = http_dir
    payload = np.random.default_rng(0).bytes(300_000)
    (served / "f.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "f.bin"
    assert fetch(f"{url}/f.bin", dest, good).read_bytes() == payload
    # cached: a second fetch does not touch the network (server file removed)
    (served / "f.bin").unlink()
    assert fetch(f"{url}/f.bin", dest, good) == dest
    # wrong checksum: nothing is kept
    (served / "g.bin").write_bytes(payload)
    with pytest.raises(DataError, match="expected"):
        fetch(f"{url}/g.bin", tmp_path / "cache" / "g.bin", "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == [dest]
    # missing file on the server: says where to put it by hand
    with pytest.raises(DataError, match=str(tmp_path / "cache" / "h.bin")):
        fetch(f"{url}/h.bin", tmp_path / "cache" / "h.bin", good)


def test_download_unreachable_fails_fast(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DataError, match="without internet, put the file at"):
        fetch(f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "x.tar.gz", timeout=3)


def test_cifar_download_from_local_mirror(http_dir, tmp_path, monkeypatch, cifar):
    """The official-release path end to end: tarball over HTTP, md5 check, safe unpack,
    torchvision read."""
    import pickle
    import tarfile

    import nmnc.data.cifar10 as c10

    served, url = http_dir
    build = tmp_path / "build" / "cifar-10-batches-py"
    build.mkdir(parents=True)
    n = 20
    for name, split in [(f"data_batch_{i}", cifar.train) for i in range(1, 6)] + [
        ("test_batch", cifar.test)
    ]:
        imgs = split.images[:n].numpy().transpose(0, 3, 1, 2).reshape(n, -1)
        with open(build / name, "wb") as f:
            pickle.dump({"data": imgs, "labels": split.labels[:n].tolist()}, f)
    with open(build / "batches.meta", "wb") as f:
        pickle.dump({"label_names": cifar.classes}, f)
    tar = served / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(build, "cifar-10-batches-py")
    monkeypatch.setattr(c10, "URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(c10, "MD5", hashlib.md5(tar.read_bytes()).hexdigest())
    ds = load_dataset("cifar10", tmp_path / "root", download=True)
    assert len(ds.train) == 5 * n and torch.equal(ds.test.images, cifar.test.images[:n])
