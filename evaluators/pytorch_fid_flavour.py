"""The pytorch-fid flavour of FID: the numbers the SIS papers printed (SPADE, OASIS, SMIS, ...).

A protocol with ``fid.flavour: pytorch-fid`` scores FID with the **pytorch-fid** package
(mseitzer, 0.3.0) rather than torch-fidelity: its ``InceptionV3`` (the FID Inception blocks,
``F.interpolate`` bilinear resize to 299, input scaled to 2x-1) on images as
``torchvision.transforms.ToTensor`` gives them (float in [0, 1]), pool3 features, numpy mean /
``np.cov`` and its ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``, eps retry). The two
libraries differ by about 0.5 % on identical inputs (docs/protocols.md), so the flavour is a
hashed protocol field.

The only thing not left to pytorch-fid is where the weight file comes from: pytorch-fid downloads
``pt_inception-2015-12-05-6726825d.pth`` itself; here the file goes through the harness's weight
resolution (explicit path -> ``$HARNESS_WEIGHTS_DIR`` -> torch hub cache -> download, with the
sha256 prefix checked), and pytorch-fid's own loader is pointed at that file while the model is
built.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from harness.core.weights import INCEPTION_V3_COMPAT, WeightSpec

TORCH_FIDELITY = "torch-fidelity"
PYTORCH_FID = "pytorch-fid"
FLAVOURS = (TORCH_FIDELITY, PYTORCH_FID)

PT_INCEPTION = WeightSpec(
    key="pt-inception-2015-12-05",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    sha256_prefix="6726825d",
    source="pytorch-fid release fid_weights (TF inception-2015-12-05, converted)")

DIMS = 2048


def inception_spec(flavour: str) -> WeightSpec:
    """The Inception weight file a FID flavour loads."""
    if flavour == PYTORCH_FID:
        return PT_INCEPTION
    if flavour == TORCH_FIDELITY:
        return INCEPTION_V3_COMPAT
    raise ValueError(f"unknown FID flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")


@contextmanager
def _pytorch_fid_loads(path: Path):
    """pytorch-fid's ``load_state_dict_from_url`` answers with the resolved file while the
    model is built (it would otherwise download into the hub cache on its own)."""
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url

    def load(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)

    pfi.load_state_dict_from_url = load
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


class PytorchFidExtractor:
    """pytorch-fid's InceptionV3 (2048-d pool3 block) fed as pytorch-fid's own loader feeds it."""

    own_loop = True   # evaluators.fid.extract_features hands the images to :meth:`features`

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu") -> None:
        from pytorch_fid.inception import InceptionV3
        with _pytorch_fid_loads(Path(weights_path)):
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]])
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def to(self, device) -> "PytorchFidExtractor":
        self.device = torch.device(device)
        self.model = self.model.to(self.device)
        return self

    @torch.no_grad()
    def features(self, images: Dataset, *, batch_size: int = 32, progress: bool = False
                 ) -> torch.Tensor:
        """[N, 2048] float32 features of a uint8 [3,H,W] image Dataset (pytorch-fid's
        ``get_activations`` loop: ToTensor scaling, the model, spatial pooling if needed)."""
        from torch.nn.functional import adaptive_avg_pool2d
        from tqdm import tqdm
        rows = []
        loader = DataLoader(images, batch_size=max(1, min(batch_size, len(images))),
                            shuffle=False, drop_last=False, num_workers=0)
        for batch in tqdm(loader, disable=not progress, leave=False, unit="batch"):
            # ToTensor on a uint8 PIL image is exactly x / 255 in float32.
            x = batch.to(self.device, dtype=torch.float32) / 255.0
            pred = self.model(x)[0]
            if pred.size(2) != 1 or pred.size(3) != 1:
                pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
            rows.append(pred.squeeze(3).squeeze(2).cpu())
        return torch.cat(rows) if rows else torch.empty(0, DIMS)


def fid_value(gen: torch.Tensor, real: torch.Tensor) -> float:
    """FID as pytorch-fid computes it from two feature sets (float64 numpy statistics)."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    g = gen.double().numpy()
    r = real.double().numpy()
    mu_g, sigma_g = np.mean(g, axis=0), np.cov(g, rowvar=False)
    mu_r, sigma_r = np.mean(r, axis=0), np.cov(r, rowvar=False)
    return float(calculate_frechet_distance(mu_g, sigma_g, mu_r, sigma_r))
