"""Using a trained run: load it, predict posts (one, a DataFrame or a whole file), featurize photos, explain.

The command line, the HTTP server and the Ray engine all go through this package, so a post is
turned into model input the same way everywhere, and batch prediction never needs the server.

``predictor`` (load a run, predict posts) · ``batch`` (a file of posts in, predictions out) ·
``photos`` (a photo's bytes: sniffed, size-checked, decoded) · ``images`` (photos turned into the
vectors the run was trained on: training's portrait treatment, the backbone, the feature cache) ·
``explain`` (occlusion).
"""
