"""Using a trained run: load it, predict posts (one, a DataFrame or a whole file), featurize photos, explain.

The command line, the HTTP server and the Ray engine all go through this package, so a post is
turned into model input the same way everywhere, and batch prediction never needs the server.
Every post takes one road, :class:`~postloc.inference.predictor.Predictor`'s: ``records`` (validated
once) -> ``frame`` -> ``probabilities`` (the model, the temperature, the name blend) -> ``answer(s)``
(ranked, decided); nothing else ranks or decides.

``predictor`` (load a run, the road) · ``batch`` (a file of posts in, predictions out) ·
``photos`` (a photo's bytes: sniffed, size-checked, decoded) · ``images`` (photos turned into the
vectors the run was trained on: training's portrait treatment, the backbone, the feature cache) ·
``explain`` (occlusion).
"""
