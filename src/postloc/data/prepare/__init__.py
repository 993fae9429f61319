"""``postloc prepare``: the paper's cleaning (Sec. IV-A), POIs and user-disjoint splits.

Steps, in order, each counted in the funnel of the summary:

1. read (``--skip-bad`` counts and skips bad records), normalise text (NFKC), take hashtags
   from the text when the post has none, lowercase them for matching;
2. keep English captions only (py3langid); captions too short to judge are kept and flagged;
3. drop duplicates (same user, same text and tags, same place);
4. POIs: the labels when the posts carry them, else clusters of their coordinates;
5. drop hashtags used by fewer than ``min_hashtag_count`` posts (paper: 50), counted over
   the posts that have a POI; posts left with no text, no hashtag and no image are dropped;
6. drop POIs with fewer than ``min_poi_posts`` posts (paper: 100) or ``min_poi_users`` users;
7. split users (not posts) into train/val/test, stratified by POI.

Memory stays bounded for large inputs: step 1-3 stream into a Parquet spool, later steps
read only the light columns they need, and the outputs are written in batches. Two engines
run steps 3-7 (``PrepareConfig.engine``); both write the same files (docs/scale-prepare.md).

Modules, each importing only those listed before it:

* :mod:`.config` -- ``PrepareConfig``, ``ReadOptions``, ``PrepareResult``;
* :mod:`.steps` -- what both engines share: cleaning posts into the spool, formatting and
  writing the prepared rows, CSV dialect, progress bars, error messages;
* :mod:`.memory` -- the default engine, one light pandas row per post;
* :mod:`.duckdb_connection`, :mod:`.poi_sample`, :mod:`.duckdb_engine` -- the out-of-core
  engine (the optional ``postloc[duckdb]`` extra): SQL over the spool under a memory limit,
  spilling to disk, for 10M+ posts; imported only when ``engine="duckdb"`` is asked for;
* :mod:`.run` -- :func:`prepare`: picks the engine, builds the output folder atomically,
  writes the summary and the manifest.
"""

from postloc.data.prepare.config import ENGINES, PrepareConfig, PrepareResult, ReadOptions
from postloc.data.prepare.run import fingerprint, prepare
from postloc.data.prepare.steps import prepared_schema

__all__ = ["ENGINES", "PrepareConfig", "PrepareResult", "ReadOptions", "fingerprint", "prepare", "prepared_schema"]
