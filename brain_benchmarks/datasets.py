"""Built-in brain data: where each file lives under the data root, where users download it from,
and its SHA-256. Files in the data root are used as they are; downloads go to the cache and are
verified. Offline, a missing file is a one-line error naming the benchmark, the file and the
place."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from nmnc.data import cache_dir, data_root
from nmnc.data.download import fetch
from nmnc.errors import DataError

from .stimuli import Stimuli, from_arrays, from_zip

KRIEGESKORTE_FILE = "kriegeskorte2008_92images/Kriegeskorte_Neuron2008_supplementalData.mat"
KRIEGESKORTE_URL = os.environ.get(
    "NMNC_KRIEGESKORTE2008_URL",
    "https://raw.githubusercontent.com/rsagroup/rsatoolbox/main/demos/92imageData/Kriegeskorte_Neuron2008_supplementalData.mat",
)
KRIEGESKORTE_SHA = "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504"
# Cowley, Stan, Pillow & Smith (2023), GitHub cowleygroup/V4_compact_models, data_V4_responses/
# (GPL-3.0)
COWLEY_URL = os.environ.get(
    "NMNC_COWLEY2023_URL",
    "https://raw.githubusercontent.com/cowleygroup/V4_compact_models/main/data_V4_responses",
)
COWLEY_SHA = {
    "images/images_190923.zip": "e99a4df1c7476bdc4d565ff4408bc421976ecc3a22c41af6bfd0cfbddb508c0c",
    "images/images_190925.zip": "765b4d4372302d4ed72c3382d41ece5ca55d7dcc3d84da7402091253529b87d1",
    "images/images_190927.zip": "d2469cc2caa629d4ed38e8d4964fb1de8c0b29e9937c25ce1c5838bc4e382653",
    "images/images_190928.zip": "6d90fdf2341e038beb57c16ce85f48c3a2bdfd450bc1c6440489529aead0f161",
    "images/images_190929.zip": "7fea6a28c092acfa646145813f532b2ea1d5a22a0b1bdade47d392b8f6bfb3f0",
    "images/images_201025.zip": "3abb63679107665eab7220bdeaf7863832a1df943bf3d7792501f5082a55b2e8",
    "images/images_210224.zip": "e2690810bee34c2e2821e5dd504c7970f3441579bc57659f27d2c11678b52c6b",
    "images/images_210305.zip": "9fab651e9c2d0b44091c2ea238c78d68fedf573cd7d4ae6b0545c5d84c121776",
    "images/images_210325.zip": "992774eca3508a2ad01accb1a31f5f3e3d90248c49f4eec314f2a915a263e454",
    "responses/responses_190923.npy": "741672d36541ce39930c8a3b5bd1cfd33c187aa47b1549c9c5569bc21aa97a28",  # noqa: E501
    "responses/responses_190925.npy": "2f94d7bcef0f68fecdb7472f509737fafac92477cf6b11a4966162b1b1072529",  # noqa: E501
    "responses/responses_190927.npy": "4c3c75ec72bc4bd3f0e22987a7b2e7e962af249d6577e8a6d727ea9075bde034",  # noqa: E501
    "responses/responses_190928.npy": "41707e2d31ace45da6d181ad28a91c299971d42430c91cc738602523e7d7eda6",  # noqa: E501
    "responses/responses_190929.npy": "18639c9e2b2baed54c4fb22e311d84dafbd986a12069370b1004880a721d2c4a",  # noqa: E501
    "responses/responses_201025.npy": "f729f3dc0d29aa38bd380c0da9e39aba916f9e2580949929b65d1714e7217a8a",  # noqa: E501
    "responses/responses_210224.npy": "4dbb7367707a5ca47ab4cea863bbf4e9765b8409cb30216693721bddfad7abfe",  # noqa: E501
    "responses/responses_210305.npy": "00dce8d39558bfc3f5dd55c6f678c05de1b63895d56193379fd7dfe41fc703f0",  # noqa: E501
    "responses/responses_210325.npy": "555e67037182611969ab90da291dcc39601de4411f651a64ad60e90572cf59d3",  # noqa: E501
    "responses_raw/responses_210325.npy": "4008dbbf31a47d9b1b8d8da609f4a7a3433c7071f0e45c611c220b217dd75b76",  # noqa: E501
}
COWLEY_SESSIONS = [
    "190923",
    "190925",
    "190927",
    "190928",
    "190929",
    "201025",
    "210224",
    "210305",
    "210325",
]


def locate(
    benchmark: str, rel: str, url: str, sha256: str, root=None, download: bool = False
) -> Path:
    """The file in the data root, else in the download cache, else downloaded (if allowed)."""
    for base in (data_root(root), cache_dir() / "data"):
        if (base / rel).exists():
            return base / rel
    target = cache_dir() / "data" / rel
    if not download:
        raise DataError(
            f"{benchmark} needs {rel}: put it at {data_root(root) / rel} (from {url}), "
            f"set --data-root / NMNC_DATA_ROOT to a folder holding it, or pass --download"
        )
    return fetch(url, target, sha256, what=f"{benchmark} data ({rel})")


def kriegeskorte2008(
    root=None, download: bool = False, benchmark: str = "Kriegeskorte2008"
) -> dict:
    """The 92 images with the monkey IT (674 neurons) and human IT (fMRI) RDMs, and category
    labels."""
    from scipy.io import loadmat
    from scipy.spatial.distance import squareform

    path = locate(benchmark, KRIEGESKORTE_FILE, KRIEGESKORTE_URL, KRIEGESKORTE_SHA, root, download)
    try:
        m = loadmat(path, squeeze_me=True, struct_as_record=False)
        images = np.stack([s.image for s in m["stimuli_92objs"]]).astype(np.uint8)
        rdms = {
            r.name: squareform(np.asarray(r.RDM, dtype=np.float64)) for r in m["RDMs_mIT_hIT_fig1"]
        }
        labels = [str(x) for x in m["categoryLabels"]]
        cats = np.asarray(m["categoryVectors"])
    except (KeyError, AttributeError, ValueError, OSError) as err:
        raise DataError(
            f"{benchmark}: {path} is not the 92-image file expected ({err}); "
            f"replace it with a copy from {KRIEGESKORTE_URL}"
        ) from None
    stimuli = from_arrays(
        "kriegeskorte2008_92", images, [f"image{i + 1:02d}" for i in range(len(images))]
    )
    return {
        "stimuli": stimuli,
        "monkey": rdms["mIT_674neurons"],
        "human": rdms["hITvisStim_316vx"],
        "categories": {lab: cats[:, i].astype(bool) for i, lab in enumerate(labels)},
    }


def cowley2023(
    root=None, download: bool = False, benchmark: str = "Cowley2023", sessions=None
) -> list[dict]:
    """Macaque V4 sessions: stimuli (sorted image order = response columns), responses (images,
    neurons), and single trials (neurons, images, repeats) where they exist."""
    from nmnc.errors import UnknownNameError

    for s in sessions or ():
        if s not in COWLEY_SESSIONS:
            raise UnknownNameError(f"{benchmark} session", s, COWLEY_SESSIONS)
    out = []
    for s in sessions or COWLEY_SESSIONS:

        def get(name: str) -> Path:
            return locate(
                benchmark,
                f"cowley2023_v4/{name}",
                f"{COWLEY_URL}/{name}",
                COWLEY_SHA[name],
                root,
                download,
            )

        stimuli = from_zip(get(f"images/images_{s}.zip"), name=f"cowley2023_{s}")
        resp = np.load(get(f"responses/responses_{s}.npy"))
        if resp.shape[1] != len(stimuli):
            raise DataError(
                f"{benchmark}: session {s} has {resp.shape[1]} response columns "
                f"but {len(stimuli)} images"
            )
        raw = None
        if f"responses_raw/responses_{s}.npy" in COWLEY_SHA:
            raw = np.load(get(f"responses_raw/responses_{s}.npy"))
        out.append({"session": s, "stimuli": stimuli, "responses": resp.T, "trials": raw})
    return out


@functools.lru_cache(maxsize=4)
def pca_images(root=None, count: int = 1000, dataset: str = "cifar10") -> Stimuli:
    """Held-out images the V4 benchmarks fit their PCA on: the first ``count`` test images of a
    registered image dataset (CIFAR-10 by default), a fixed set for every model."""
    from nmnc.data import DATASETS, load_dataset
    from nmnc.errors import UnknownNameError

    if dataset not in DATASETS:
        raise UnknownNameError("PCA image dataset", dataset, DATASETS.names())
    split = load_dataset(dataset, root).test
    images = getattr(split, "images", None)
    if images is None:
        raise DataError(
            f"{dataset}: its test images are files on disk, not an array; choose an in-memory "
            "dataset for the PCA images (e.g. cifar10)"
        )
    n = min(count, len(images))
    return from_arrays(f"{dataset}-test[{n}]", np.asarray(images[:n]))
