"""Baselines of the MRLF paper's Table II plus strong simple references, behind the Estimator interface.

* ``tagvisor``  random forest over hashtag bag-of-words (scikit-learn; saved as tree arrays);
* ``deepgeo``   character-level BiLSTM with attention (after jhlau/twitter-deepgeo);
* ``loctwi``    fastText-style bag of hashed character n-grams, mean pooled, linear;
* ``resnet50``, ``resnet101``, ``densenet121``, ``vgg16``: classifier heads on cached image
  feature vectors (``image_vector``; the backbone that produced them is named in reports);
* ``knn-image`` k nearest neighbours over image vectors (cosine);
* ``mrlf-plus`` MRLF late-fused with TF-IDF + logistic regression (not the paper's model).

Each class says what it needs (``requires``) and its ``--quick`` settings. They are listed in
:data:`postloc.models.registry.BUILTIN` by module path, so importing this package does not import
torch or scikit-learn.
"""
