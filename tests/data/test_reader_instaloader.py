"""The Instaloader folder reader, against folders that instaloader's own code wrote (offline)."""

from __future__ import annotations

import json
import lzma
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import instaloader
import pytest
from instaloader import InstaloaderContext, Post

import instaloader_fixtures as fx
from postloc.data.readers import SkipReport, read_posts
from postloc.data.readers import instaloader as reader
from postloc.data.readers.instaloader import iter_instaloader
from postloc.data.schema import Post as SchemaPost
from postloc.errors import BadInputError
from postloc.text.normalize import extract_hashtags


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with fx.no_network():
        yield


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> fx.DownloadTree:
    with fx.no_network():
        return fx.build_download_tree(tmp_path_factory.mktemp("downloads"))


def _records(path: Path) -> dict[str, Any]:
    items = list(iter_instaloader(path))
    assert [item.error for item in items if item.error is not None] == []
    return {item.record["id"]: item for item in items}


def _saved_posts(root: Path) -> list[tuple[Path, Post]]:
    """Every Post structure under ``root``, loaded by instaloader (the reference reader)."""
    context = InstaloaderContext(quiet=True)
    # Post.location answers None unless logged in; with every field saved it asks nothing online.
    context.username = "offline-reader"
    found = []
    for path in sorted(root.rglob("*.json.xz")):
        structure = instaloader.load_structure_from_file(context, str(path))
        if isinstance(structure, Post):
            found.append((path, structure))
    return found


def _instaloader_location(post: Post) -> tuple[str, str, float, float] | None:
    node = instaloader.get_json_structure(post)["node"]
    if node.get("location"):  # GraphQL path saved with geotags
        location = post.location
        return str(location.id), location.name, location.lat, location.lng
    # Location pages: only the iPhone struct has it (Post.location would fetch the post again).
    location = node.get("iphone_struct", {}).get("location")
    if location:
        return str(location["pk"]), location["name"], location["lat"], location["lng"]
    return None


# --- round trip against instaloader ------------------------------------------------------------


def test_every_saved_post_matches_what_instaloader_reads(tree: fx.DownloadTree) -> None:
    saved = _saved_posts(tree.root)
    assert len(saved) == 7  # 4 + 1 location posts, 2 profile posts; profile/hashtag/resume JSON are not posts
    records = _records(tree.root)
    for path, post in saved:
        item = records[post.shortcode]
        record = item.record
        assert item.source == str(path)
        assert record["shortcode"] == post.shortcode
        assert record.get("text") == post.caption
        assert record["user"] == str(post.owner_id)
        created = SchemaPost.from_record(record, source=item.source, base_dir=item.base_dir).created
        assert created == fx.utc_iso(post.date_utc)
        expected = _instaloader_location(post)
        found = (record["poi"], record["poi_name"], record["lat"], record["lon"]) if "poi_name" in record else None
        assert found == expected, path


def test_caption_is_nfc_like_instaloader(tree: fx.DownloadTree) -> None:
    record = _records(tree.folders["new_york"])["CrQfA1aLmN1"].record
    assert record["text"].startswith("Caf\u00e9 au lait")


# --- posts through the public reader -----------------------------------------------------------


def test_read_posts_on_the_parent_folder(tree: fx.DownloadTree) -> None:
    report = SkipReport()
    posts = list(read_posts(tree.root, report=report))
    assert report.read == 8 and report.skipped == 0
    # Folders in name order (#nyc, %212988663, %213385402, natgeo), posts in date order inside.
    assert [p.id for p in posts] == [
        f"#nyc_{tree.no_json_stem}",
        "CrQfA1aLmN1",
        "CrQfA2bBxY2",
        "CrQfA3cCzZ3",
        "CrQfA4dDwW4",
        "CrQfA5eEvV5",
        "CrQfA6fFuU6",
        "CrQfA7gGtT7",
    ]
    assert posts == list(read_posts(tree.root))  # deterministic
    for post in posts:
        assert post.images, post.id
        assert all(os.path.isabs(p) and os.path.isfile(p) and p.endswith(".jpg") for p in post.images)
        assert post.extra["source_format"] == "instaloader"
        assert post.hashtags == extract_hashtags(post.text)  # what prepare would take from the caption
        assert post.created is not None
    assert "coffee" in next(p for p in posts if "Caf" in p.text).hashtags
    assert sum(bool(p.hashtags) for p in posts) >= 4


def test_location_page_post(tree: fx.DownloadTree) -> None:
    post = next(p for p in read_posts(tree.folders["new_york"]) if p.id == "CrQfA1aLmN1")
    assert post.poi == "212988663" and post.extra["poi_name"] == "New York, New York"
    assert (post.lat, post.lon) == (40.7142, -74.0064)
    assert post.user == "1507979106"
    assert post.created == "2023-05-01T12:30:00+00:00"
    assert post.text == "Caf\u00e9 au lait by the #hudson \U0001f305\n#nyc #coffee"
    assert post.images == [str((tree.folders["new_york"] / "2023-05-01_12-30-00_UTC.jpg").resolve())]
    assert post.extra["shortcode"] == "CrQfA1aLmN1"


def test_sidecar_order_and_video_thumbnails(tree: fx.DownloadTree) -> None:
    posts = {p.id: p for p in read_posts(tree.folders["new_york"])}
    carousel = posts["CrQfA2bBxY2"]
    assert [Path(p).name for p in carousel.images] == [f"2023-05-01_13-30-00_UTC_{i}.jpg" for i in range(1, 12)]
    assert (tree.folders["new_york"] / "2023-05-01_13-30-00_UTC_3.mp4").exists()  # ignored, its thumbnail kept
    video = posts["CrQfA4dDwW4"]
    assert [Path(p).name for p in video.images] == ["2023-05-01_15-30-00_UTC.jpg"]
    no_caption = posts["CrQfA3cCzZ3"]
    assert no_caption.text == "" and not (tree.folders["new_york"] / "2023-05-01_14-30-00_UTC.txt").exists()


def test_graphql_posts_with_and_without_geotags(tree: fx.DownloadTree) -> None:
    posts = {p.id: p for p in read_posts(tree.folders["profile"])}
    assert set(posts) == {"CrQfA6fFuU6", "CrQfA7gGtT7"}  # id file, profile JSON and picture are not posts
    geotagged, plain = posts["CrQfA6fFuU6"], posts["CrQfA7gGtT7"]
    assert (geotagged.poi, geotagged.lat, geotagged.lon) == ("2095440", 40.7825, -73.9656)
    assert geotagged.extra["poi_name"] == "Central Park"
    assert geotagged.text == "Autumn in #CentralPark"  # the JSON's caption; _old_01.txt is history
    assert len(geotagged.images) == 3 and geotagged.user == "787132"
    assert (plain.poi, plain.lat, plain.lon) == (None, None, None) and "poi_name" not in plain.extra
    assert plain.text == "No geotag here" and plain.created == "2023-05-04T12:30:00+00:00"


def test_post_without_json_uses_its_files(tree: fx.DownloadTree) -> None:
    (post,) = read_posts(tree.folders["hashtag"])  # #nyc.json.xz is a Hashtag structure, skipped
    assert post.id == f"#nyc_{tree.no_json_stem}"
    assert post.text == "Night #nyc"
    assert post.created == "2023-05-05T12:30:00+00:00"
    assert [Path(p).name for p in post.images] == [f"{tree.no_json_stem}_1.jpg", f"{tree.no_json_stem}_2.jpg"]
    assert (post.lat, post.lon, post.extra["poi_name"]) == (40.758, -73.9855, "Times Square")  # from _location.txt
    assert post.poi is None and post.user is None


def test_location_folder_names_the_poi_when_the_post_has_none(tmp_path: Path) -> None:
    loader = fx.offline_loader(tmp_path)
    loader.download_post(
        Post.from_iphone_struct(loader.context, fx.iphone_media(1, "CnoLOC00001", fx.T0, "x")), "%4242"
    )
    (post,) = read_posts(tmp_path / "%4242")
    assert post.poi == "4242" and post.lat is None and "poi_name" not in post.extra


def test_same_second_posts_share_one_stem(tmp_path: Path) -> None:
    folder = fx.build_same_second(tmp_path)
    assert (folder / "2023-05-01_12-30-00_UTC_old_01.txt").exists()  # instaloader renamed nothing else
    (post,) = read_posts(folder)
    assert (post.id, post.text) == ("CsAME2bbbb2", "second")


def test_uncompressed_json_and_other_instaloader_files(tmp_path: Path) -> None:
    loader = fx.offline_loader(tmp_path, compress_json=False)
    post = Post.from_iphone_struct(
        loader.context, fx.iphone_media(7, "CnoXZ000007", fx.T0, "plain json", location=fx.LONDON)
    )
    loader.download_post(post, "%213385402")
    folder = tmp_path / "%213385402"
    stem = loader.format_filename(post, target="%213385402")
    assert (folder / f"{stem}.json").exists()
    # What update_comments would write (hand-made: reading comments needs a login).
    (folder / f"{stem}_comments.json").write_text(json.dumps([{"id": 1, "text": "nice", "answers": []}]))
    (folder / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "README.txt").write_text("downloaded with instaloader 4.16\n")  # not a post: no picture, no date
    (folder / "notes").mkdir()  # empty subfolder: nothing
    (read,) = read_posts(tmp_path)
    assert (read.id, read.text, read.poi) == ("CnoXZ000007", "plain json", "213385402")


def test_instaloader3_bare_node(tmp_path: Path) -> None:
    # Instaloader 3 saved the GraphQL node itself (load_structure accepts it by its "shortcode").
    node = fx.graphql_node(9, "Cv3BARE0009", fx.T0, "from v3")
    (tmp_path / "2023-05-01_12-30-00_UTC.json").write_text(json.dumps(node))
    (post,) = read_posts(tmp_path)
    assert (post.id, post.text, post.user) == ("Cv3BARE0009", "from v3", "787132")


# --- streaming ---------------------------------------------------------------------------------


def test_posts_are_read_one_at_a_time(tree: fx.DownloadTree, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    original = reader._load_post_node

    def counting(path: Path, *args: Any) -> Any:
        loaded.append(path.name)
        return original(path, *args)

    monkeypatch.setattr(reader, "_load_post_node", counting)
    stream = iter_instaloader(tree.folders["new_york"])
    assert loaded == []
    first = next(stream)
    assert first.record["id"] == "CrQfA1aLmN1" and loaded == ["2023-05-01_12-30-00_UTC.json.xz"]


# --- bad input ---------------------------------------------------------------------------------


def _truncated(folder: Path) -> bytes:
    good = next(folder.glob("*.json.xz")).read_bytes()
    return good[: len(good) // 2]


BAD_FILES = {
    "random bytes": (lambda folder: os.urandom(300), "is not a valid .xz file"),
    "truncated": (_truncated, "is truncated"),
    "not JSON": (lambda folder: lzma.compress(b"{not json"), "invalid JSON"),
    "not a Post": (lambda folder: lzma.compress(b'{"posts": [1, 2]}'), "is not an Instaloader post"),
    "unknown node type": (
        lambda folder: lzma.compress(
            json.dumps({"node": {}, "instaloader": {"version": "4.16", "node_type": "Comment"}}).encode()
        ),
        "not an Instaloader Post",
    ),
    "no shortcode": (
        lambda folder: lzma.compress(
            json.dumps({"node": {"id": 5}, "instaloader": {"version": "4.16", "node_type": "Post"}}).encode()
        ),
        "must be a non-empty string",
    ),
    "bad caption": (
        lambda folder: lzma.compress(
            json.dumps({"node": {"shortcode": "Cx", "caption": 5}, "instaloader": {"node_type": "Post"}}).encode()
        ),
        "must hold a string",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_structure_is_one_skippable_record(tree: fx.DownloadTree, tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "%212988663"
    shutil.copytree(tree.folders["new_york"], folder)
    make, problem = BAD_FILES[kind]
    bad = folder / "2023-04-30_08-00-00_UTC.json.xz"
    bad.write_bytes(make(folder))
    (folder / "2023-04-30_08-00-00_UTC.jpg").write_bytes(fx.tiny_jpeg("bad"))  # no stray post from its picture

    with pytest.raises(BadInputError) as caught:
        list(read_posts(tmp_path))
    assert caught.value.source == str(bad) and caught.value.line is None
    assert problem in caught.value.problem

    report = SkipReport()
    posts = list(read_posts(tmp_path, skip_bad=True, report=report))
    assert [p.id for p in posts] == ["CrQfA1aLmN1", "CrQfA2bBxY2", "CrQfA3cCzZ3", "CrQfA4dDwW4"]
    assert (report.read, report.skipped) == (4, 1)
    assert str(bad) in report.examples[0]


def test_undecodable_caption_file_is_a_bad_record(tmp_path: Path) -> None:
    (tmp_path / "2023-05-01_12-30-00_UTC.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "2023-05-01_12-30-00_UTC.jpg").write_bytes(fx.tiny_jpeg("x"))
    report = SkipReport()
    assert list(read_posts(tmp_path, skip_bad=True, report=report)) == []
    assert report.skipped == 1 and "is not valid UTF-8" in report.examples[0]


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    assert list(read_posts(tmp_path)) == []
    with pytest.raises(BadInputError, match="no such"):
        read_posts(tmp_path / "missing")
    with pytest.raises(BadInputError, match="no such folder"):
        iter_instaloader(tmp_path / "missing")
    (tmp_path / "posts.txt").write_text("x")
    with pytest.raises(BadInputError, match="is not a folder"):
        iter_instaloader(tmp_path / "posts.txt")


def test_unreadable_subfolder_is_skippable_and_root_raises(
    tree: fx.DownloadTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permissions cannot be taken away from root, so the listing itself fails here.
    locked = tree.folders["london"]
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(reader.os, "scandir", scandir)
    report = SkipReport()
    posts = list(read_posts(tree.root, skip_bad=True, report=report))
    assert len(posts) == 7 and "CrQfA5eEvV5" not in {p.id for p in posts}
    assert report.skipped == 1 and report.examples == [f"{locked}: cannot be read: Permission denied"]
    with pytest.raises(BadInputError, match="cannot be read"):
        list(iter_instaloader(locked))


def test_prepare_ingests_an_instaloader_download(tree: fx.DownloadTree, tmp_path: Path) -> None:
    """`prepare` on the parent folder: POIs from the location ids, centres from their lat/lng."""
    from postloc import PrepareConfig, load_prepared, prepare

    config = PrepareConfig(min_hashtag_count=1, min_poi_posts=1, min_poi_users=1, languages=())
    result = prepare(tree.root, tmp_path / "prepared", config)
    assert result.summary["poi_method"] == "labels"
    data = load_prepared(tmp_path / "prepared")
    new_york = data.posts[data.posts["poi"] == str(fx.NEW_YORK["pk"])]
    assert len(new_york) == 4 and new_york["image"].map(len).sum() >= 12
    centre = data.pois.set_index("poi").loc[str(fx.NEW_YORK["pk"])]
    assert (centre["lat"], centre["lon"]) == pytest.approx((fx.NEW_YORK["lat"], fx.NEW_YORK["lng"]))
    assert centre["name"] == fx.NEW_YORK["name"]
    assert "coffee" in new_york.set_index("text").filter(like="Caf", axis=0)["hashtags"].iloc[0].tolist()


def test_unreadable_date_keeps_the_post_without_created(tmp_path: Path) -> None:
    """No model needs the time: a date that is not Unix seconds costs the post its ``created`` only."""
    node = fx.graphql_node(9, "CvBADDATE09", fx.T0, "odd date")
    node["taken_at_timestamp"] = "yesterday"
    envelope = {"node": node, "instaloader": {"version": "4.16", "node_type": "Post"}}
    (tmp_path / "2023-05-01_12-30-00_UTC.json").write_text(json.dumps(envelope))
    report = SkipReport()
    (post,) = read_posts(tmp_path, report=report)
    assert (post.id, post.created) == ("CvBADDATE09", None)
    assert report.warned == 1 and '"created"' in report.warning_examples[0]


@pytest.mark.parametrize(
    "content",
    [
        b'{"title": "trip notes", "places": ["Flinders Street"]}',  # an export: JSON, not a structure
        b"[1, 2, 3]",
        b"my notes, not JSON at all",
        json.dumps({"node": {}, "instaloader": {"node_type": "Comment"}}).encode(),
    ],
)
def test_stray_json_file_is_skipped_with_a_warning(tree: fx.DownloadTree, tmp_path: Path, content: bytes) -> None:
    """A notes/export file among the downloads is passed over, named, and the posts still read."""
    shutil.copytree(tree.folders["new_york"], tmp_path / "%212988663")
    stray = tmp_path / "%212988663" / "notes.json"
    stray.write_bytes(content)
    (tmp_path / "export.json").write_bytes(content)
    report = SkipReport()
    posts = list(read_posts(tmp_path, report=report))  # no --skip-bad needed
    assert [p.id for p in posts] == ["CrQfA1aLmN1", "CrQfA2bBxY2", "CrQfA3cCzZ3", "CrQfA4dDwW4"]
    assert (report.read, report.skipped, report.warned) == (4, 0, 2)
    assert report.warning_examples[0].startswith(f"{tmp_path / 'export.json'}: stray file skipped")
    assert str(stray) in report.warning_examples[1]
    assert "stray file skipped, not an Instaloader post" in report.summary()


def test_prepare_skips_a_stray_json_file(tree: fx.DownloadTree, tmp_path: Path) -> None:
    from postloc import PrepareConfig, prepare

    root = tmp_path / "downloads"
    shutil.copytree(tree.root, root)
    (root / "notes.json").write_text('{"todo": "label the photos"}')
    config = PrepareConfig(min_hashtag_count=1, min_poi_posts=1, min_poi_users=1, languages=())
    result = prepare(root, tmp_path / "prepared", config)
    assert result.skip_report.warned == 1 and result.skip_report.skipped == 0
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert "notes.json" in manifest["skipped"]["warning_examples"][0]
