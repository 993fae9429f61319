"""VGG-16/19 (Simonyan & Zisserman, 2015; the MRLF paper's image backbone) in torchvision's layout.

``width`` and ``hidden`` exist so tests can build a tiny network with the same parameter names
and push its state dict through the real weight-loading path.
"""

from __future__ import annotations

from torch import Tensor, nn

M = "M"
CONFIGS = {
    "vgg16": (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M),
    "vgg19": (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M),
}


class VGG(nn.Module):
    def __init__(self, config: tuple, num_classes: int = 1000, width: float = 1.0, hidden: int = 4096):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in config:
            if item == M:
                layers.append(nn.MaxPool2d(2, 2))
            else:
                cout = max(1, int(item * width))
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = cin
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(cin * 49, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg16(**kwargs) -> VGG:
    return VGG(CONFIGS["vgg16"], **kwargs)


def vgg19(**kwargs) -> VGG:
    return VGG(CONFIGS["vgg19"], **kwargs)
