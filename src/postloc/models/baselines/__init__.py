"""Baselines of the MRLF paper's Table II plus strong simple references, behind the Estimator interface.

* ``tagvisor``  random forest over hashtag bag-of-words (scikit-learn; saved as tree arrays);
* ``deepgeo``   character-level BiLSTM with attention (after jhlau/twitter-deepgeo);
* ``loctwi``    fastText-style bag of hashed character n-grams, mean pooled, linear;
* ``resnet50``, ``resnet101``, ``densenet121``, ``vgg16``: classifier heads on cached image
  feature vectors (``image_vector``; the backbone that produced them is named in reports);
* ``knn-image`` k nearest neighbours over image vectors (cosine);
* ``mrlf-plus`` MRLF late-fused with TF-IDF + logistic regression (not the paper's model).

They are registered in :mod:`postloc.models.registry` by module path, so importing this package
does not import torch or scikit-learn.
"""

#: registry name -> "module:Class" (merged into the registry's built-in table)
BASELINES = {
    "tagvisor": "postloc.models.baselines.tagvisor:TagVisor",
    "deepgeo": "postloc.models.baselines.deepgeo:DeepGeo",
    "loctwi": "postloc.models.baselines.loctwi:LocTwi",
    "resnet50": "postloc.models.baselines.image_head:ResNet50Head",
    "resnet101": "postloc.models.baselines.image_head:ResNet101Head",
    "densenet121": "postloc.models.baselines.image_head:DenseNet121Head",
    "vgg16": "postloc.models.baselines.image_head:VGG16Head",
    "knn-image": "postloc.models.baselines.knn_image:KnnImage",
    "mrlf-plus": "postloc.models.baselines.mrlf_plus:MRLFPlus",  # an improved, separately named MRLF
}

#: which input each baseline needs (used by the experiments to mark a method n/a)
REQUIRES = {
    "tagvisor": ("hashtags",),
    "deepgeo": ("text|hashtags",),
    "loctwi": ("text|hashtags",),
    "resnet50": ("image",), "resnet101": ("image",), "densenet121": ("image",), "vgg16": ("image",),
    "knn-image": ("image",),
    "mrlf-plus": ("text|hashtags",),
}

__all__ = ["BASELINES", "REQUIRES"]
