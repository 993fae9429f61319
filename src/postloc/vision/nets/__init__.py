"""Image classification networks written to torchvision's state-dict layout.

Why they exist: torchvision cannot be installed next to the CPU build of torch from the package
index (its wheels are built against CUDA torch and fail on import with
``operator torchvision::nms does not exist``). These modules have exactly torchvision's
parameter names and shapes (checked in ``tests/vision/test_vision_backbones.py``), so torchvision's
own ImageNet weight files load into them strictly, with or without torchvision installed.
"""

from postloc.vision.nets.densenet import densenet121
from postloc.vision.nets.mobilenet_v2 import MobileNetV2
from postloc.vision.nets.resnet import resnet50, resnet101
from postloc.vision.nets.vgg import vgg16, vgg19

__all__ = ["MobileNetV2", "densenet121", "resnet50", "resnet101", "vgg16", "vgg19"]
