"""Small labelled posts and prepare settings shared by the prepare, escaping and red-team tests."""

from __future__ import annotations

from postloc import PrepareConfig

SMALL = PrepareConfig(min_hashtag_count=3, min_poi_posts=10, min_poi_users=2, train=0.5, val=0.25, test=0.25)


def labelled_posts():
    """Two labelled POIs, 4 users each; planted non-English, duplicate, rare-tag and empty posts."""
    records = []
    for poi, tag, lat in (("bridge", "bridge", 40.70), ("square", "square", 40.75)):
        for i in range(12):
            records.append(
                {
                    "id": f"{poi}{i}",
                    "text": f"What a lovely evening walk number {i} #{tag.title()} #nyc",
                    "poi": poi,
                    "lat": lat,
                    "lon": -73.99,
                    "user": f"{poi}-u{i % 4}",
                    "image": f"img/{poi}{i}.jpg",
                }
            )
    records += [
        {"id": "german", "text": "Das ist ein wunderschöner Abend an der Brücke", "poi": "bridge", "user": "x"},
        {"id": "dup", "text": "What a lovely evening walk number 0 #bridge #NYC", "poi": "bridge", "user": "bridge-u0"},
        {"id": "short", "text": "wow #bridge", "poi": "bridge", "user": "y"},
        {"id": "rare", "hashtags": ["onlyonce"], "poi": "square", "user": "z"},
        {"id": "nolabel", "text": "Lovely evening walk again today with friends", "user": "w"},
    ]
    return records
