"""postloc: infer where a social-media post was made from its photo, caption and hashtags.

The Python API is usable without the CLI::

    import postloc
    posts = postloc.read_posts("posts.jsonl")            # streaming iterator of Post
    result = postloc.prepare("posts.jsonl", "prepared/")  # the paper's cleaning + splits
    data = postloc.load_prepared("prepared/")             # DataFrames for training
"""

from __future__ import annotations

from postloc._version import __version__
from postloc.data.prepare import PrepareConfig, PrepareResult, prepare
from postloc.data.prepared import PreparedData, load_prepared
from postloc.data.readers import read_posts
from postloc.data.schema import Post
from postloc.data.writers import write_posts
from postloc.errors import BadInputError, EmptyDatasetError, PostlocError

__all__ = [
    "__version__",
    "BadInputError",
    "EmptyDatasetError",
    "PostlocError",
    "Post",
    "read_posts",
    "write_posts",
    "PreparedData",
    "load_prepared",
    "PrepareConfig",
    "PrepareResult",
    "prepare",
]
