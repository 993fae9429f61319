"""``postloc serve``: the prediction API (FastAPI), its limits and the web page.

Import :func:`postloc.serve.app.create_app` to embed the app; FastAPI, uvicorn and
python-multipart are optional dependencies (the ``serve`` extra), imported only here.
"""
