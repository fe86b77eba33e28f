"""The inspection network: in-graph preprocessing, a MobileNetV3-small classifier and an anomaly side.

One module, one ONNX graph: uint8 NHWC ``image`` in; ``scores`` (softmax), ``anomaly`` and
``heatmap`` out. The anomaly side never sees a labelled defect; it has three parts:
- a small convolutional autoencoder on a downsampled copy of the unit, trained on ok units
  to restore them, also from synthetic corruptions (DRAEM practice): what it cannot restore
  is what ok items never show (reconstruction error map). With ``ae_contrast`` the map is
  divided by its own mean over the unit (at least ``ae_contrast_floor``): a local defect
  stands out against the rest of the unit, while nuisance (noise, light) that raises the
  error everywhere cancels out.
  With ``ae_channel_max`` the error of a colour unit is the largest over its channels, not
  their mean, so a change of colour in one channel is not diluted by the others;
- a segmentation head on a mid-level feature map of the classifier (deeper context
  upsampled onto it), trained to find synthetic local changes made to ok units (CutPaste /
  NSA practice, see :class:`training.data.SyntheticAnomaly`);
- a Gaussian of the classifier's pooled features, fitted on ok units only.
Each part is divided by its ok-train 99th percentile; the heat map is the larger of the two
maps per location and the anomaly score the largest of all. Trained from scratch, no
pretrained weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_small

# Input scaling inside the graph: uint8 -> about [-2, 2]. One scalar for every channel keeps
# the graph simple; BGR order is kept as it arrives (the network never saw any other).
PIXEL_CENTER = 0.5
PIXEL_SCALE = 0.25
# Floor of the mean reconstruction error in the contrast score (units of [0, 1] pixel values).
AE_CONTRAST_EPS = 1e-3


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to rebuild the network from a checkpoint."""

    height: int
    width: int
    channels: int
    n_classes: int
    width_mult: float = 0.5
    unshuffle: int = 2  # space-to-depth stem in the graph: every pixel kept, a quarter of the positions
    tap: int = 3  # features block whose output map carries the segmentation head
    deep_tap: int = 8  # deeper block upsampled onto that map for context
    ae_down: int = 4  # the autoencoder sees the unit average-pooled by this factor
    ae_width: int = 16
    ae_latent: int = 8
    ae_stages: int = 4  # stride-2 stages of the autoencoder (see AutoEncoder)
    ae_pool: int = 2  # error map pooling window before the max
    # Its stride; 0: the window itself (non-overlapping, as packages before it were built). 1: every
    # position, so a small defect is never split between windows.
    ae_pool_stride: int = 0
    # Reconstruction map over its own mean per unit (peak-to-mean contrast). False: the absolute
    # error, as packages before it were built (their checkpoints load with this default).
    ae_contrast: bool = False
    # Reconstruction error over the colour channels: max (True) or mean (False, as before).
    ae_channel_max: bool = False
    # Contrast only: the unit's mean error is taken as at least this much (0: no floor, as
    # packages before it). A sharp or blurred frame restores better than usual everywhere;
    # dividing by its small mean would inflate whatever error is left. Training sets it to the
    # median mean error of the ok training units (see training.train.fit_anomaly).
    ae_contrast_floor: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AutoEncoder(nn.Module):
    """``stages`` stride-2 stages down to a narrow latent map and back, resized to the input size.

    Four stages (the default, as every package before the option was built) leave a latent
    map of 1/16 the unit's side; three keep 1/8, so the outline of the item is restored
    more sharply and a defect beside it stands out less blurred by the normal edge.
    """

    def __init__(self, channels: int, width: int, latent: int, stages: int = 4) -> None:
        super().__init__()
        if not 2 <= stages <= 4:
            raise ValueError(f"autoencoder stages must be 2..4, got {stages}")
        w, act = width, nn.ReLU
        # Encoder widths w, 2w, 2w, ...; the decoder mirrors them back to w.
        widths = [w] + [2 * w] * (stages - 1)
        enc: list[nn.Module] = []
        c_in = channels
        for c in widths:
            enc += [nn.Conv2d(c_in, c, 3, 2, 1), act()]
            c_in = c
        enc.append(nn.Conv2d(c_in, latent, 1))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(latent, 2 * w, 1), act()]
        c_in = 2 * w
        for c in reversed(widths[:-1]):
            dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c_in, c, 3, 1, 1), act()]
            c_in = c
        dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(c_in, channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.decoder(self.encoder(x))
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=(int(x.shape[2]), int(x.shape[3])), mode="bilinear", align_corners=False)
        return y


class InspectorNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Export only: the space-to-depth stem as one convolution (see :meth:`stem`).
        self.fold_stem = False
        base = mobilenet_v3_small(weights=None, num_classes=cfg.n_classes, width_mult=cfg.width_mult)
        first = base.features[0][0]
        assert isinstance(first, nn.Conv2d)
        base.features[0][0] = nn.Conv2d(
            cfg.channels * cfg.unshuffle**2, first.out_channels, kernel_size=3, stride=2, padding=1, bias=False
        )
        self.features = base.features
        self.avgpool = base.avgpool
        self.classifier = base.classifier
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                # torchvision's 0.01 lags far behind the weights over a short CPU training run.
                m.momentum = 0.1
        seg_in = self._block_channels(cfg.tap) + self._block_channels(cfg.deep_tap)
        self.seg_head = nn.Sequential(nn.Conv2d(seg_in, 32, 3, padding=1), nn.Hardswish(), nn.Conv2d(32, 1, 1))
        self.autoencoder = AutoEncoder(cfg.channels, cfg.ae_width, cfg.ae_latent, cfg.ae_stages)
        self.eval()  # the shape probe must not touch the batch-norm statistics
        with torch.no_grad():
            probe = torch.zeros(1, cfg.channels, cfg.height, cfg.width)
            _, tap, pooled = self.trunk(probe)
            ae_map = self.ae_error_map(probe)
        self.train()
        self.seg_size = (int(tap.shape[2]), int(tap.shape[3]))
        self.map_size = (int(ae_map.shape[1]), int(ae_map.shape[2]))
        d = pooled.shape[1]
        # Gaussian of the pooled features, fitted on ok units only; neutral until then.
        self.register_buffer("ad_global_mean", torch.zeros(d))
        self.register_buffer("ad_global_whiten", torch.eye(d))
        # Each part (reconstruction, segmentation, global) over its ok-train 99th percentile.
        self.register_buffer("ad_norm", torch.ones(3))

    def _block_channels(self, index: int) -> int:
        convs = [m for m in self.features[index].modules() if isinstance(m, nn.Conv2d)]
        return int(convs[-1].out_channels)

    def prepare(self, x01: torch.Tensor) -> torch.Tensor:
        """Float NCHW in [0, 1] -> the backbone's input (normalised, space-to-depth)."""
        x = (x01 - PIXEL_CENTER) / PIXEL_SCALE
        if self.cfg.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.cfg.unshuffle)
        return x

    def folded_stem_weight(self) -> torch.Tensor:
        """The first convolution's weight re-indexed to act on the unshuffled image.

        Space-to-depth by ``r`` then a 3x3 stride-2 convolution (padding 1) is the same sum
        as one ``3r x 3r`` convolution with stride ``2r`` and padding ``r`` on the image itself:
        input channel ``c*r*r + i*r + j`` at kernel tap ``(ky, kx)`` reads image pixel
        ``(r*ky + i, r*kx + j)`` of the window, and the zero padding covers the same pixels.
        """
        r, c = self.cfg.unshuffle, self.cfg.channels
        w = self.features[0][0].weight
        k = w.shape[-1]
        return w.reshape(w.shape[0], c, r, r, k, k).permute(0, 1, 4, 2, 5, 3).reshape(w.shape[0], c, k * r, k * r)

    def stem(self, x01: torch.Tensor) -> torch.Tensor:
        """The first features block on float NCHW in [0, 1].

        As trained: normalise, space-to-depth, convolution. With ``fold_stem`` (set on the copy
        that is exported) the last two are one convolution on the image, the same arithmetic
        without the six-dimensional transpose that space-to-depth costs ONNX Runtime.
        """
        first = self.features[0]
        if not (self.fold_stem and self.cfg.unshuffle > 1):
            return first(self.prepare(x01))
        conv = first[0]
        assert isinstance(conv, nn.Conv2d)
        r = self.cfg.unshuffle
        x = (x01 - PIXEL_CENTER) / PIXEL_SCALE
        x = F.conv2d(x, self.folded_stem_weight(), conv.bias, stride=conv.stride[0] * r, padding=conv.padding[0] * r)
        return first[2](first[1](x))

    def trunk(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, the segmentation head's input map and the pooled features (float NCHW in [0, 1])."""
        x = self.stem(x01)
        tap = deep = x
        for i, block in enumerate(self.features[1:], start=1):
            x = block(x)
            if i == self.cfg.tap:
                tap = x
            if i == self.cfg.deep_tap:
                deep = x
        pooled = torch.flatten(self.avgpool(x), 1)
        context = F.interpolate(deep, size=(int(tap.shape[2]), int(tap.shape[3])), mode="nearest")
        return self.classifier(pooled), torch.cat([tap, context], dim=1), pooled

    def forward_float(self, x01: torch.Tensor) -> torch.Tensor:
        """Logits only."""
        return self.trunk(x01)[0]

    def ae_input(self, x01: torch.Tensor) -> torch.Tensor:
        d = self.cfg.ae_down
        return F.avg_pool2d(x01, d) if d > 1 else x01

    def ae_error_map(self, x01: torch.Tensor) -> torch.Tensor:
        """Reconstruction error, channel mean (or max), pooled: ``[N, h, w]``."""
        small = self.ae_input(x01)
        diff = (self.autoencoder(small) - small).abs()
        err = diff.amax(dim=1, keepdim=True) if self.cfg.ae_channel_max else diff.mean(dim=1, keepdim=True)
        p = self.cfg.ae_pool
        if p > 1:
            err = F.avg_pool2d(err, p, stride=self.cfg.ae_pool_stride or p)
        return err.squeeze(1)

    def rec_score_map(self, err: torch.Tensor) -> torch.Tensor:
        """The reconstruction part's map from the error map ``[N, h, w]``: absolute, or over its mean."""
        if not self.cfg.ae_contrast:
            return err
        mean = err.mean(dim=(1, 2), keepdim=True)
        if self.cfg.ae_contrast_floor > 0:
            mean = mean.clamp_min(self.cfg.ae_contrast_floor)
        return err / (mean + AE_CONTRAST_EPS)

    def global_score(self, pooled: torch.Tensor) -> torch.Tensor:
        z = (pooled - self.ad_global_mean) @ self.ad_global_whiten.T
        return (z * z).mean(dim=1)

    def seg_logits(self, tap: torch.Tensor) -> torch.Tensor:
        """Per-location logit that the unit was changed there, ``[N, h, w]``."""
        return self.seg_head(tap).squeeze(1)

    def anomaly_parts(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, reconstruction score map, segmentation probability map and global score (not normalised)."""
        logits, tap, pooled = self.trunk(x01)
        rec = self.rec_score_map(self.ae_error_map(x01))
        return logits, rec, torch.sigmoid(self.seg_logits(tap)), self.global_score(pooled)

    def outputs_float(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores, anomaly and heat map for float NCHW input in [0, 1]."""
        logits, rec, seg, glob = self.anomaly_parts(x01)
        seg_up = F.interpolate(seg.unsqueeze(1), size=self.map_size, mode="nearest").squeeze(1)
        heat = torch.maximum(rec / self.ad_norm[0], seg_up / self.ad_norm[1])
        anomaly = torch.maximum(torch.amax(heat, dim=(1, 2)), glob / self.ad_norm[2])
        return torch.softmax(logits, dim=1), anomaly, heat

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exported interface: uint8 ``[N, H, W, C]`` -> scores ``[N, K]``, anomaly ``[N]``, heatmap ``[N, h, w]``."""
        x01 = image.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        return self.outputs_float(x01)


def uint8_to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], channels-last in memory (faster convolutions on CPU)."""
    # copy=True: scaled in place below, never the caller's tensor (one batch-sized tensor less).
    x = batch.permute(0, 3, 1, 2).to(torch.float32, copy=True)
    return x.mul_(1.0 / 255.0).contiguous(memory_format=torch.channels_last)


def float_to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """Float NCHW in [0, 1] -> uint8 NHWC (contiguous), the inverse of :func:`uint8_to_float`."""
    return torch.round(x01 * 255.0).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
