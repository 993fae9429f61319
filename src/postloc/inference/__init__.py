"""Using a trained run: load it, predict posts (one, a DataFrame or a whole file), featurize photos, explain.

The command line, the HTTP server and the Ray engine all go through this package, so a post is
turned into model input the same way everywhere, and batch prediction never needs the server.
"""
