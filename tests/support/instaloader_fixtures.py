"""Instaloader download folders written by instaloader's own code, offline (a test helper).

Posts are made the way instaloader makes them (``Post.from_iphone_struct`` for location pages,
``Post(context, node)`` for GraphQL paths) and written by ``Instaloader.download_post``,
``save_location``, ``save_profile_id``, ``save_metadata_json`` and ``download_profilepic``. Only
the HTTP response for a picture is replaced by an in-memory one, so file names, sidecar numbering,
caption files and ``.json.xz`` structures are exactly what instaloader writes. Nothing here logs
in or opens a socket (:func:`no_network` makes sure of it).
"""

from __future__ import annotations

import io
import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import instaloader
import requests
from instaloader import Hashtag, Instaloader, Post, PostLocation, Profile
from instaloader.nodeiterator import FrozenNodeIterator

CDN = "https://scontent-lga3-1.cdninstagram.com/v/t51.29350-15"
#: 2023-05-01 12:30:00 UTC and on, one post a few hours apart.
T0 = 1682944200

NEW_YORK = {"pk": 212988663, "name": "New York, New York", "lat": 40.7142, "lng": -74.0064}
LONDON = {"pk": 213385402, "name": "London, United Kingdom", "lat": 51.5072, "lng": -0.1275}
CENTRAL_PARK = {
    "id": "2095440",
    "has_public_page": True,
    "name": "Central Park",
    "slug": "central-park",
    "lat": 40.7825,
    "lng": -73.9656,
}


@contextmanager
def no_network() -> Iterator[None]:
    """Any attempt to resolve a name or open a connection fails loudly."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Instaloader fixtures must not touch the network")

    saved = socket.socket.connect, socket.create_connection, socket.getaddrinfo
    socket.socket.connect, socket.create_connection, socket.getaddrinfo = refuse, refuse, refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo = saved  # type: ignore[assignment]


def tiny_jpeg(seed: str) -> bytes:
    """A real 8x8 JPEG whose colour depends on ``seed`` (bare SOI/EOI markers without Pillow)."""
    try:
        from PIL import Image
    except ImportError:
        return b"\xff\xd8\xff\xd9"
    value = zlib.crc32(seed.encode())
    colour = (value & 255, (value >> 8) & 255, (value >> 16) & 255)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _offline_response(url: str) -> requests.Response:
    """What ``InstaloaderContext.get_raw`` returns, served from memory."""
    response = requests.Response()
    response.status_code = 200
    response.url = url
    is_video = ".mp4" in url
    response.headers["Content-Type"] = "video/mp4" if is_video else "image/jpeg"
    response.headers["Last-Modified"] = "Mon, 01 May 2023 10:00:00 GMT"
    response.raw = io.BytesIO(b"\x00\x00\x00\x18ftypmp42" if is_video else tiny_jpeg(url))
    return response


def offline_loader(parent: Path, **options: Any) -> Instaloader:
    """An Instaloader (not logged in) that writes ``<parent>/<target>/`` and downloads from memory."""
    pattern = os.path.join(str(parent).replace("{", "{{").replace("}", "}}"), "{target}")
    loader = Instaloader(quiet=True, sleep=False, max_connection_attempts=1, dirname_pattern=pattern, **options)
    loader.context.get_raw = _offline_response  # type: ignore[method-assign]
    return loader


def _candidates(url: str) -> dict[str, Any]:
    return {"candidates": [{"width": 1080, "height": 1350, "url": url}]}


def iphone_media(
    pk: int,
    code: str,
    taken_at: int,
    caption: str | None,
    *,
    location: dict[str, Any] | None = None,
    user_pk: int = 1_507_979_106,
    username: str = "nyc.walker",
    carousel: str = "",
    video: bool = False,
) -> dict[str, Any]:
    """A media item as the location page's "recent" section lists it (iPhone API shape).

    ``carousel`` is one letter per slide, ``i`` for an image and ``v`` for a video.
    """
    media: dict[str, Any] = {
        "pk": pk,
        "id": f"{pk}_{user_pk}",
        "code": code,
        "media_type": 8 if carousel else 2 if video else 1,
        "taken_at": taken_at,
        "caption": None if caption is None else {"pk": pk + 1, "text": caption, "user_id": user_pk},
        "has_liked": False,
        "like_count": 42,
        "comment_count": 3,
        "accessibility_caption": "Photo by nyc.walker in New York.",
        "user": {
            "pk": user_pk,
            "username": username,
            "full_name": "NYC Walker",
            "is_private": False,
            "profile_pic_url": f"{CDN}/{user_pk}_profile.jpg?stp=dst-jpg_s150x150",
        },
        "image_versions2": _candidates(f"{CDN}/{pk}_n.jpg?stp=dst-jpg_e35&_nc_ht=scontent"),
    }
    if location is not None:
        media["location"] = {
            **location,
            "short_name": location["name"].split(",")[0],
            "address": "",
            "city": "",
            "external_source": "facebook_places",
            "facebook_places_id": location["pk"] + 7,
        }
    if video:
        media.update(
            video_versions=[{"type": 101, "url": f"{CDN}/{pk}_n.mp4?efg=video"}], video_duration=7.5, view_count=99
        )
    for index, kind in enumerate(carousel, start=1):
        slide: dict[str, Any] = {
            "pk": pk + 100 + index,
            "media_type": 2 if kind == "v" else 1,
            "image_versions2": _candidates(f"{CDN}/{pk}_{index}_n.jpg?stp=dst-jpg_e35"),
        }
        if kind == "v":
            slide["video_versions"] = [{"type": 101, "url": f"{CDN}/{pk}_{index}_n.mp4?efg=video"}]
        media.setdefault("carousel_media", []).append(slide)
    return media


def graphql_node(
    mediaid: int,
    shortcode: str,
    taken_at: int,
    caption: str | None,
    *,
    owner_id: str = "787132",
    username: str = "natgeo",
    location: dict[str, Any] | None = None,
    sidecar: int = 0,
) -> dict[str, Any]:
    """A post node as a profile or hashtag listing returns it (GraphQL shape)."""
    node: dict[str, Any] = {
        "__typename": "GraphSidecar" if sidecar else "GraphImage",
        "id": str(mediaid),
        "shortcode": shortcode,
        "is_video": False,
        "taken_at_timestamp": taken_at,
        "display_url": f"{CDN}/{mediaid}_n.jpg?stp=dst-jpg_e35",
        "edge_media_to_caption": {"edges": [] if caption is None else [{"node": {"text": caption}}]},
        "owner": {"id": owner_id, "username": username},
        "edge_media_preview_like": {"count": 1200},
        "edge_media_to_comment": {"count": 0},
        "accessibility_caption": None,
    }
    if location is not None:
        node["location"] = dict(location)
    if sidecar:
        node["edge_sidecar_to_children"] = {
            "edges": [
                {
                    "node": {
                        "__typename": "GraphImage",
                        "is_video": False,
                        "display_url": f"{CDN}/{mediaid}_{i}_n.jpg?x=1",
                    }
                }
                for i in range(1, sidecar + 1)
            ]
        }
    return node


@dataclass
class DownloadTree:
    """Where the fixture put things: the parent folder and the folders under it."""

    root: Path
    folders: dict[str, Path] = field(default_factory=dict)
    no_json_stem: str = ""


def build_download_tree(parent: Path) -> DownloadTree:
    """Two location folders, a profile folder and a hashtag folder, like ``instaloader %… %… natgeo "#nyc"``."""
    parent.mkdir(parents=True, exist_ok=True)
    loader = offline_loader(parent)
    context = loader.context
    tree = DownloadTree(parent)

    new_york = "%" + str(NEW_YORK["pk"])
    posts = [
        # Caption with a decomposed accent (instaloader NFC-normalises), hashtags and a line break.
        Post.from_iphone_struct(
            context,
            iphone_media(
                3091000000000000001,
                "CrQfA1aLmN1",
                T0,
                "Cafe\u0301 au lait by the #hudson \U0001f305\n#nyc #coffee",
                location=NEW_YORK,
            ),
        ),
        # An 11-slide carousel (slide 3 a video): _10 and _11 must come after _9.
        Post.from_iphone_struct(
            context,
            iphone_media(
                3091000000000000002,
                "CrQfA2bBxY2",
                T0 + 3600,
                "Eleven views of #centralpark",
                location=NEW_YORK,
                carousel="iivi" + "i" * 7,
            ),
        ),
        # No caption: no .txt file.
        Post.from_iphone_struct(
            context, iphone_media(3091000000000000003, "CrQfA3cCzZ3", T0 + 7200, None, location=NEW_YORK)
        ),
        # A video: its thumbnail .jpg is the post's image, the .mp4 is ignored.
        Post.from_iphone_struct(
            context,
            iphone_media(
                3091000000000000004, "CrQfA4dDwW4", T0 + 10800, "Subway #music", location=NEW_YORK, video=True
            ),
        ),
    ]
    for post in posts:
        loader.download_post(post, target=new_york)
    tree.folders["new_york"] = parent / new_york
    # A resume file, as posts_download_loop leaves it after an interrupted download.
    frozen = FrozenNodeIterator(None, {"location": str(NEW_YORK["pk"])}, None, None, 4, None, None, None, None)
    instaloader.save_structure_to_file(
        frozen,
        loader.format_filename_within_target_path(new_york, None, loader.resume_prefix or "", "a1b2c3", "json.xz"),
    )

    london = "%" + str(LONDON["pk"])
    london_post = Post.from_iphone_struct(
        context,
        iphone_media(
            3091000000000000005,
            "CrQfA5eEvV5",
            T0 + 86400,
            "Rainy #london",
            location=LONDON,
            user_pk=44,
            username="uk.rain",
        ),
    )
    loader.download_post(london_post, target=london)
    tree.folders["london"] = parent / london

    # A profile: GraphQL posts, one saved with geotags (full location), one without; the caption
    # of the first changed between two runs (instaloader keeps the old one as _old_01.txt).
    profile = Profile(
        context,
        {
            "id": "787132",
            "username": "natgeo",
            "full_name": "National Geographic",
            "is_private": False,
            "profile_pic_url_hd": f"{CDN}/787132_profile.jpg?x=1",
        },
    )
    loader.save_profile_id(profile)
    loader.download_profilepic(profile)
    loader.save_metadata_json(str(parent / "natgeo" / "natgeo_787132"), profile)
    first = graphql_node(
        3091000000000000006, "CrQfA6fFuU6", T0 + 2 * 86400, "Old caption", location=CENTRAL_PARK, sidecar=3
    )
    loader.download_post(Post(context, first), target="natgeo")
    first["edge_media_to_caption"]["edges"][0]["node"]["text"] = "Autumn in #CentralPark"
    loader.download_post(Post(context, first), target="natgeo")
    loader.download_post(
        Post(context, graphql_node(3091000000000000007, "CrQfA7gGtT7", T0 + 3 * 86400, "No geotag here")),
        target="natgeo",
    )
    tree.folders["profile"] = parent / "natgeo"

    # A hashtag folder downloaded with --no-metadata-json --geotags: pictures, caption, location text.
    plain = offline_loader(parent, save_metadata=False)
    tagged = Post(context, graphql_node(3091000000000000008, "CrQfA8hHsS8", T0 + 4 * 86400, "Night #nyc", sidecar=2))
    plain.download_post(tagged, target="#nyc")
    stem = plain.format_filename(tagged, target="#nyc")
    plain.save_location(
        str(parent / "#nyc" / stem),
        PostLocation(1, "Times Square", "times-square", True, 40.758, -73.9855),
        tagged.date_local,
    )
    loader.save_metadata_json(str(parent / "#nyc" / "#nyc"), Hashtag(context, {"name": "nyc", "id": 17841562498105353}))
    tree.folders["hashtag"] = parent / "#nyc"
    tree.no_json_stem = stem
    return tree


def build_same_second(parent: Path) -> Path:
    """Two posts taken in the same second at one location: instaloader does not rename the second."""
    loader = offline_loader(parent)
    target = "%" + str(NEW_YORK["pk"])
    for pk, code, text in (
        (3091000000000000011, "CsAME1aaaa1", "first"),
        (3091000000000000012, "CsAME2bbbb2", "second"),
    ):
        loader.download_post(
            Post.from_iphone_struct(loader.context, iphone_media(pk, code, T0, text, location=NEW_YORK)), target
        )
    return parent / target


def utc_iso(moment: datetime) -> str:
    """``Post.date_utc`` is naive UTC; the reader's ``created`` is ISO-8601 with the offset."""
    return moment.replace(tzinfo=UTC).isoformat()


#: Four places of a city, each with its own words, for a download big enough to train on.
PLACES = (
    ({"pk": 1001, "name": "Brooklyn Bridge", "lat": 40.7061, "lng": -73.9969}, ("bridge", "brooklynbridge", "river")),
    ({"pk": 1002, "name": "Central Park", "lat": 40.7825, "lng": -73.9656}, ("park", "centralpark", "lake")),
    ({"pk": 1003, "name": "Times Square", "lat": 40.7580, "lng": -73.9855}, ("lights", "timessquare", "broadway")),
    ({"pk": 1004, "name": "Coney Island", "lat": 40.5749, "lng": -73.9857}, ("beach", "coneyisland", "boardwalk")),
)


#: a place with two posts: too small to train on, known by its name only
SMALL_PLACE = {"pk": 1005, "name": "Grand Central Terminal", "lat": 40.7527, "lng": -73.9772}


def build_location_pages(parent: Path, *, posts_per_place: int = 24, users: int = 12) -> Path:
    """Location-page downloads (``instaloader %1001 %1002 ...``) of :data:`PLACES`, many users each,
    and two posts at :data:`SMALL_PLACE`.

    Captions name the place's words and hashtags (plus one word shared by all), so a model can
    learn the places; users post at several places, as real users do.
    """
    parent.mkdir(parents=True, exist_ok=True)
    loader = offline_loader(parent)
    pk = 3092000000000000000
    for p, (location, words) in enumerate(PLACES):
        for i in range(posts_per_place):
            pk += 1
            user = (i + p) % users
            word, tag = words[i % len(words)], words[(i + 1) % len(words)]
            caption = f"A lovely afternoon by the {word} with friends in the city #{tag} #nyc"
            media = iphone_media(
                pk,
                f"Cq{pk % 10**9:09d}",
                T0 + 3600 * (p * posts_per_place + i),
                caption,
                location=location,
                user_pk=10_000 + user,
                username=f"walker{user}",
            )
            loader.download_post(Post.from_iphone_struct(loader.context, media), target=f"%{location['pk']}")
    for i in range(2):
        pk += 1
        media = iphone_media(
            pk,
            f"Cq{pk % 10**9:09d}",
            T0 - 3600 * (i + 1),
            "Waiting for a train",
            location=SMALL_PLACE,
            user_pk=20_000 + i,
        )
        loader.download_post(Post.from_iphone_struct(loader.context, media), target=f"%{SMALL_PLACE['pk']}")
    return parent
