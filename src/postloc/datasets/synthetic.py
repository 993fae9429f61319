"""A synthetic multimodal data set: posts with photo, caption and hashtags at N points of interest.

Why: no geotagged photo collection can be fetched here, yet the image branch (features, portrait
filter, inpainting, the Table III ablation) must be trained and tested on images that carry a
location signal. Each POI gets a procedurally rendered *visual signature* (sky gradient, a skyline,
a landmark shape, water or ground, palette and textures) and every post varies it (camera pan and
zoom, lighting, clouds, sensor noise, JPEG quality). Captions and hashtags come from per-POI
vocabularies mixed with shared words, words of other POIs and typos. Some posts carry a real person
(the public-domain Grace Hopper portrait, cut out with a packaged mask): "selfies" cover most of the
frame (portrait ratio above the paper's 0.5), "tourists" stand in front of the landmark (smaller).
Modalities go missing at configurable rates.

Everything it writes says it is synthetic: ids start with ``syn-``, every record has
``"synthetic": true``, ``manifest.json`` has ``"synthetic": true``, a README says so, and each
JPEG carries a comment. Output is the exchange format (``posts.jsonl`` + ``images/`` +
``pois.csv``), ready for ``postloc prepare``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from postloc.errors import PostlocError
from postloc.io.atomic import write_folder_atomically
from postloc.io.inputs import read_small_json
from postloc.settings import setting, setting_error

GENERATOR_VERSION = 1
COMMENT = b"postloc synthetic image (not a real photo of a real place)"

LANDMARKS = ("tower", "bridge", "dome", "arch", "wheel", "pyramid", "spires", "lighthouse")
NAME_WORDS = (
    "Harbor",
    "Old Town",
    "Central",
    "River",
    "Glass",
    "Stone",
    "North",
    "Market",
    "Garden",
    "Royal",
    "Iron",
    "Sunset",
    "Union",
    "Bay",
    "Liberty",
    "Crystal",
    "Cedar",
    "Hill",
    "Canal",
    "Plaza",
)
LANDMARK_NOUNS = {
    "tower": "Tower",
    "bridge": "Bridge",
    "dome": "Cathedral",
    "arch": "Gate",
    "wheel": "Pier",
    "pyramid": "Museum",
    "spires": "Abbey",
    "lighthouse": "Point",
}
LANDMARK_WORDS = {
    "tower": ("tower", "observation deck", "elevator", "skyline", "rooftop"),
    "bridge": ("bridge", "cables", "river walk", "crossing", "pedestrian path"),
    "dome": ("cathedral", "dome", "choir", "stained glass", "bells"),
    "arch": ("gate", "arch", "parade", "monument", "old walls"),
    "wheel": ("ferris wheel", "pier", "boardwalk", "carnival", "arcade"),
    "pyramid": ("museum", "gallery", "exhibition", "glass pyramid", "sculptures"),
    "spires": ("abbey", "spires", "cloister", "organ concert", "courtyard"),
    "lighthouse": ("lighthouse", "cliffs", "waves", "harbour seals", "coastal trail"),
}
SHARED_WORDS = (
    "friends",
    "coffee",
    "weekend",
    "sunset",
    "city",
    "walk",
    "family",
    "photos",
    "view",
    "lunch",
    "holiday",
    "morning",
    "evening",
    "crowd",
    "weather",
    "trip",
    "camera",
    "light",
)
ADJECTIVES = ("amazing", "beautiful", "crowded", "quiet", "stunning", "windy", "lovely", "huge", "peaceful", "busy")
SHARED_TAGS = ("travel", "nofilter", "photooftheday", "citylife", "weekend", "instagood", "wanderlust", "explore")
TEMPLATES = (
    "Spent the {time} at {name} with my {shared} and the {feature} was {adj}, we took so many {shared2} here.",
    "Finally made it to {name}! The {feature} looks {adj} in person and the {shared} was perfect for a long {shared2}.",
    "Another {adj} {time} around {name}, grabbed a {shared} nearby and watched the {feature} for a while.",
    "If you visit the city do not skip {name}, the {feature} is {adj} and the {shared2} from here is worth it.",
    "Throwback to our {shared} at {name}: {adj} {feature}, good {shared2}, tired feet and a happy heart.",
    "We walked to {name} this {time}. It was {adj}, the {feature} and the {feature2} made the whole {shared} special.",
)
TIMES = ("morning", "afternoon", "evening", "weekend", "holiday", "sunrise", "night")


@dataclass(frozen=True)
class SyntheticPostsConfig:
    """Size, noise and missing-modality rates of a synthetic data set."""

    pois: int = setting(8, help="(default %(default)s)")
    #: prepare's default keeps POIs with >= 100 posts
    posts_per_poi: int = setting(120, help="(default %(default)s)")
    seed: int = setting(0)
    width: int = 320  # --size WxH
    height: int = 240
    #: default: one user per 6 posts (user-disjoint splits need many users)
    users: int | None = setting(None, help="number of users (default: posts / 6)")
    #: a person covers most of the frame (portrait ratio > 0.5): noise to drop
    selfie_rate: float = setting(0.12, help="(default %(default)s)")
    #: a person in front of the landmark (smaller): noise to inpaint
    tourist_rate: float = setting(0.12, help="(default %(default)s)")
    missing_image_rate: float = setting(0.08, help="(default %(default)s)")
    missing_text_rate: float = setting(0.08, help="(default %(default)s)")
    missing_hashtags_rate: float = setting(0.08, help="(default %(default)s)")
    second_image_rate: float = setting(0.1, help="(default %(default)s)")
    other_poi_word_rate: float = 0.15  # a word or tag of another POI (confusion)
    typo_rate: float = setting(0.04, help="(default %(default)s)")  # per word
    visual_noise: float = 1.0  # scales pan, zoom, lighting and sensor noise of the renders
    center_lat: float = 40.7549  # the paper's New York set; synthetic coordinates around it
    center_lon: float = -73.9840
    spread_km: float = 6.0
    post_sigma_m: float = 40.0
    jpeg_quality: tuple[int, int] = (70, 95)

    def __post_init__(self) -> None:
        """Refuse a data set that cannot be drawn, before anything is written (``postloc synthetic``'s one error
        line names the flag)."""
        for name in ("pois", "posts_per_poi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise setting_error(self, name, "must be an integer of at least 1", value)
        if self.users is not None and (isinstance(self.users, bool) or self.users < 0):  # 0: the default
            raise setting_error(self, "users", "must not be negative", self.users)
        for name in RATES:
            value = getattr(self, name)
            if isinstance(value, bool) or not 0 <= value <= 1:  # NaN fails the comparison too
                raise setting_error(self, name, "must be a number in [0, 1]", value)
        if self.selfie_rate + self.tourist_rate > 1:
            raise PostlocError(
                "the selfie and tourist rates (--selfie-rate + --tourist-rate) must add up to at most 1, "
                f"got {self.selfie_rate} + {self.tourist_rate}"
            )
        if self.width < 32 or self.height < 32:
            raise PostlocError("images must be at least 32x32 pixels")


#: the shares of :class:`SyntheticPostsConfig`, each in [0, 1]
RATES = (
    "selfie_rate",
    "tourist_rate",
    "missing_image_rate",
    "missing_text_rate",
    "missing_hashtags_rate",
    "second_image_rate",
    "other_poi_word_rate",
    "typo_rate",
)


@dataclass
class SyntheticResult:
    out_dir: Path
    posts: int
    images: int
    pois: int
    manifest: dict[str, Any]


# --- POIs ----------------------------------------------------------------------------------


@dataclass
class _Poi:
    index: int
    poi: str
    name: str
    landmark: str
    lat: float
    lon: float
    words: tuple[str, ...]
    tags: tuple[str, ...]
    look: dict[str, Any]


def _palette(rng: np.random.Generator) -> dict[str, Any]:
    """The visual signature of one POI: colours, horizon, skyline and landmark geometry."""
    hue = rng.uniform(0, 1)
    sky_top = _hsv(hue, rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.95))
    sky_bottom = _hsv((hue + rng.uniform(-0.15, 0.15)) % 1, rng.uniform(0.1, 0.5), rng.uniform(0.75, 1.0))
    n_buildings = int(rng.integers(4, 12))
    buildings = [
        (
            float(rng.uniform(0, 1)),
            float(rng.uniform(0.04, 0.12)),
            float(rng.uniform(0.1, 0.45)),
            _hsv(rng.uniform(0, 1), rng.uniform(0, 0.4), rng.uniform(0.15, 0.6)),
            int(rng.integers(0, 3)),
        )
        for _ in range(n_buildings)
    ]
    return {
        "sky_top": sky_top,
        "sky_bottom": sky_bottom,
        "horizon": float(rng.uniform(0.5, 0.72)),
        "water": bool(rng.random() < 0.5),
        "ground": _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.6)),
        "water_colour": _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.6)),
        "buildings": buildings,
        "landmark_x": float(rng.uniform(0.3, 0.7)),
        "landmark_scale": float(rng.uniform(0.8, 1.2)),
        "landmark_colour": _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.9)),
        "sun": (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.08, 0.3))) if rng.random() < 0.6 else None,
        "texture": float(rng.uniform(0.02, 0.12)),
    }


def _make_pois(config: SyntheticPostsConfig, rng: np.random.Generator) -> list[_Poi]:
    names: set[str] = set()
    pois = []
    km_lat = 1 / 110.574
    km_lon = 1 / (111.320 * math.cos(math.radians(config.center_lat)))
    for i in range(config.pois):
        landmark = LANDMARKS[i % len(LANDMARKS)] if i < len(LANDMARKS) else str(rng.choice(LANDMARKS))
        for _ in range(100):
            name = f"{rng.choice(NAME_WORDS)} {LANDMARK_NOUNS[landmark]}"
            if name not in names:
                break
        else:
            name = f"{name} {i}"
        names.add(name)
        slug = name.lower().replace(" ", "")
        own = tuple(str(w) for w in rng.choice(LANDMARK_WORDS[landmark], size=3, replace=False))
        words = (name.split()[0].lower(),) + own
        tags = (slug, slug + "nyc", own[0].replace(" ", ""), name.split()[0].lower() + "views")
        x, y = rng.uniform(-config.spread_km / 2, config.spread_km / 2, size=2)
        pois.append(
            _Poi(
                i,
                f"syn-poi-{i:03d}",
                name,
                landmark,
                config.center_lat + y * km_lat,
                config.center_lon + x * km_lon,
                words,
                tags,
                _palette(rng),
            )
        )
    return pois


# --- rendering -----------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(float(h) % 1, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return int(r * 255), int(g * 255), int(b * 255)


def _gradient(top, bottom, height: int, width: int) -> np.ndarray:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return (np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t) * np.ones(
        (1, width, 1), np.float32
    )


def _draw_landmark(draw: ImageDraw.ImageDraw, kind: str, cx: float, base: float, size: float, colour) -> None:
    """One distinctive silhouette per landmark type, anchored on the horizon at x = cx."""
    s = size
    if kind == "tower":
        draw.rectangle((cx - 0.05 * s, base - 0.9 * s, cx + 0.05 * s, base), fill=colour)
        draw.polygon(
            [(cx - 0.05 * s, base - 0.9 * s), (cx + 0.05 * s, base - 0.9 * s), (cx, base - 1.25 * s)], fill=colour
        )
        draw.rectangle((cx - 0.09 * s, base - 0.7 * s, cx + 0.09 * s, base - 0.62 * s), fill=colour)
    elif kind == "bridge":
        for px in (cx - 0.6 * s, cx + 0.6 * s):
            draw.rectangle((px - 0.04 * s, base - 0.7 * s, px + 0.04 * s, base), fill=colour)
        draw.rectangle((cx - 1.4 * s, base - 0.2 * s, cx + 1.4 * s, base - 0.16 * s), fill=colour)
        draw.arc(
            (cx - 0.6 * s, base - 1.1 * s, cx + 0.6 * s, base + 0.3 * s),
            180,
            360,
            fill=colour,
            width=max(1, int(0.02 * s)),
        )
        for k in range(-6, 7):
            x = cx + k * 0.1 * s
            draw.line((x, base - 0.2 * s, x, base - 0.2 * s - 0.5 * s * (1 - (k / 6) ** 2)), fill=colour, width=1)
    elif kind == "dome":
        draw.rectangle((cx - 0.4 * s, base - 0.4 * s, cx + 0.4 * s, base), fill=colour)
        draw.pieslice((cx - 0.3 * s, base - 0.75 * s, cx + 0.3 * s, base - 0.15 * s), 180, 360, fill=colour)
        draw.rectangle((cx - 0.02 * s, base - 0.9 * s, cx + 0.02 * s, base - 0.44 * s), fill=colour)
    elif kind == "arch":
        draw.rectangle((cx - 0.45 * s, base - 0.65 * s, cx + 0.45 * s, base), fill=colour)
        draw.pieslice((cx - 0.2 * s, base - 0.5 * s, cx + 0.2 * s, base - 0.1 * s), 180, 360, fill=(235, 235, 235))
        draw.rectangle((cx - 0.2 * s, base - 0.3 * s, cx + 0.2 * s, base), fill=(235, 235, 235))
    elif kind == "wheel":
        r = 0.45 * s
        draw.ellipse(
            (cx - r, base - 2 * r - 0.1 * s, cx + r, base - 0.1 * s), outline=colour, width=max(2, int(0.03 * s))
        )
        for k in range(12):
            a = k * math.pi / 6
            draw.line(
                (cx, base - r - 0.1 * s, cx + r * math.cos(a), base - r - 0.1 * s + r * math.sin(a)),
                fill=colour,
                width=1,
            )
        draw.polygon([(cx, base - r - 0.1 * s), (cx - 0.25 * s, base), (cx + 0.25 * s, base)], outline=colour)
    elif kind == "pyramid":
        draw.polygon([(cx - 0.55 * s, base), (cx + 0.55 * s, base), (cx, base - 0.6 * s)], fill=colour)
        for k in range(1, 5):
            y = base - 0.12 * s * k
            half = 0.55 * s * (1 - k / 5)
            draw.line((cx - half, y, cx + half, y), fill=(255, 255, 255), width=1)
    elif kind == "spires":
        for dx, h in ((-0.25, 1.0), (0.0, 1.3), (0.25, 1.0)):
            x = cx + dx * s
            draw.rectangle((x - 0.06 * s, base - 0.55 * h * s, x + 0.06 * s, base), fill=colour)
            draw.polygon(
                [(x - 0.06 * s, base - 0.55 * h * s), (x + 0.06 * s, base - 0.55 * h * s), (x, base - h * s)],
                fill=colour,
            )
    elif kind == "lighthouse":
        draw.polygon(
            [
                (cx - 0.1 * s, base),
                (cx + 0.1 * s, base),
                (cx + 0.06 * s, base - 0.8 * s),
                (cx - 0.06 * s, base - 0.8 * s),
            ],
            fill=(240, 240, 240),
        )
        for k in range(4):
            y0 = base - 0.2 * s * k - 0.1 * s
            draw.rectangle((cx - 0.09 * s, y0 - 0.05 * s, cx + 0.09 * s, y0), fill=colour)
        draw.ellipse((cx - 0.08 * s, base - 0.95 * s, cx + 0.08 * s, base - 0.8 * s), fill=(255, 230, 120))


def render_scene(poi: _Poi, config: SyntheticPostsConfig, rng: np.random.Generator) -> Image.Image:
    """One photo of ``poi``: its signature under this post's camera, light and noise."""
    look, noise = poi.look, config.visual_noise
    W, H = config.width, config.height
    zoom = float(np.clip(1 + rng.normal(0, 0.08 * noise), 0.8, 1.25))
    cw, ch = max(W + 2, int(W * 1.3 * zoom)), max(H + 2, int(H * 1.1 * zoom))
    horizon = int(ch * float(np.clip(look["horizon"] + rng.normal(0, 0.03 * noise), 0.4, 0.8)))
    canvas = np.zeros((ch, cw, 3), np.float32)
    canvas[:horizon] = _gradient(look["sky_top"], look["sky_bottom"], horizon, cw)
    below = ch - horizon
    if look["water"]:
        water = _gradient(look["water_colour"], np.asarray(look["water_colour"]) * 0.6, below, cw)
        ripples = np.sin(np.arange(below)[:, None] * 0.9 + rng.uniform(0, 6)) * 12 * np.ones((1, cw))
        canvas[horizon:] = water + ripples[..., None]
    else:
        ground = _gradient(look["ground"], np.asarray(look["ground"]) * 0.7, below, cw)
        canvas[horizon:] = ground + rng.normal(0, 255 * look["texture"], (below, cw, 1))
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if look["sun"] is not None:
        sx, sy = look["sun"]
        r = 0.06 * ch
        draw.ellipse((sx * cw - r, sy * ch - r, sx * cw + r, sy * ch + r), fill=(255, 244, 200))
    for _ in range(int(rng.integers(0, 4))):  # clouds differ from post to post
        x, y = rng.uniform(0, cw), rng.uniform(0, horizon * 0.6)
        w, h = rng.uniform(0.1, 0.3) * cw, rng.uniform(0.03, 0.08) * ch
        draw.ellipse((x, y, x + w, y + h), fill=(245, 245, 250))
    for bx, bw, bh, colour, roof in look["buildings"]:
        x0, w, h = bx * cw, bw * cw, bh * ch
        draw.rectangle((x0, horizon - h, x0 + w, horizon), fill=colour)
        if roof == 1:
            draw.polygon([(x0, horizon - h), (x0 + w, horizon - h), (x0 + w / 2, horizon - h - 0.3 * w)], fill=colour)
        lit = tuple(min(255, c + 90) for c in colour)
        for wy in np.arange(horizon - h + 4, horizon - 4, 7):
            for wx in np.arange(x0 + 3, x0 + w - 3, 6):
                if rng.random() < 0.35:
                    draw.rectangle((wx, wy, wx + 2, wy + 3), fill=lit)
    _draw_landmark(
        draw,
        poi.landmark,
        look["landmark_x"] * cw,
        horizon,
        0.45 * ch * look["landmark_scale"],
        look["landmark_colour"],
    )
    if look["water"]:  # a darkened, blurred reflection of the skyline
        array = np.asarray(image).astype(np.float32)
        depth = min(horizon, below)
        reflection = array[horizon - depth : horizon][::-1] * 0.5 + array[horizon : horizon + depth] * 0.5
        array[horizon : horizon + depth] = reflection
        image = Image.fromarray(array.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    pan = rng.uniform(0, 1) * (cw - W) if noise > 0 else (cw - W) / 2
    top = float(np.clip((ch - H) / 2 + rng.normal(0, 0.1 * noise) * (ch - H), 0, ch - H))
    image = image.crop((int(pan), int(top), int(pan) + W, int(top) + H))
    return _light(image, rng, noise)


def _light(image: Image.Image, rng: np.random.Generator, noise: float) -> Image.Image:
    """Exposure, white balance and sensor noise of this post's camera."""
    array: np.ndarray = np.asarray(image).astype(np.float32)
    gain = 1 + rng.normal(0, 0.12 * noise)
    tint = 1 + rng.normal(0, 0.05 * noise, 3)
    array = (array - 128) * float(np.clip(1 + rng.normal(0, 0.1 * noise), 0.7, 1.3)) + 128
    array = array * gain * tint + rng.normal(0, 6 * noise, array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


_PERSON: tuple[Image.Image, Image.Image] | None = None


def _person() -> tuple[Image.Image, Image.Image]:
    """The packaged real portrait and its person mask (a cut-out, so only the person is pasted)."""
    global _PERSON
    if _PERSON is None:
        assets = resources.files("postloc.vision").joinpath("assets")
        with assets.joinpath("grace_hopper.jpg").open("rb") as f:
            photo = Image.open(f).convert("RGB")
        with assets.joinpath("grace_hopper_mask.png").open("rb") as f:
            mask = Image.open(f).convert("L")
        _PERSON = (photo, mask)
    return _PERSON


def paste_person(scene: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """``selfie``: the person fills most of the frame; ``tourist``: a smaller person in front of the view."""
    photo, mask = _person()
    W, H = scene.size
    if rng.random() < 0.5:
        photo, mask = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if kind == "selfie":
        scale = max(W / photo.width, H / photo.height) * rng.uniform(1.4, 1.8)
    else:
        scale = H / photo.height * rng.uniform(0.45, 0.7)
    size = (max(1, int(photo.width * scale)), max(1, int(photo.height * scale)))
    photo, mask = photo.resize(size, Image.Resampling.BILINEAR), mask.resize(size, Image.Resampling.BILINEAR)
    if kind == "selfie":
        x = int((W - size[0]) / 2 + rng.normal(0, 0.05) * W)
        y = int(-rng.uniform(0.0, 0.35) * (size[1] - H))  # the face stays in the frame, as in a selfie
    else:
        x = int(rng.uniform(0, max(1, W - size[0])))
        y = H - size[1]
    light = float(np.clip(1 + rng.normal(0, 0.1), 0.75, 1.25))
    photo = Image.fromarray(np.clip(np.asarray(photo).astype(np.float32) * light, 0, 255).astype(np.uint8))
    out = scene.copy()
    out.paste(photo, (x, y), mask)
    return out


# --- text ----------------------------------------------------------------------------------


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    kind = rng.integers(0, 3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind == 1:
        return word[:i] + word[i + 1 :]  # drop
    return word[:i] + word[i] + word[i:]  # double


def _draw_poi(pois: list[_Poi], rng: np.random.Generator) -> _Poi:
    """``rng.choice(pois)``: the same draw, so seeded data sets stay the same."""
    return rng.choice(pois)  # type: ignore[arg-type]  # numpy's stubs leave out sequences of plain objects


def _caption(poi: _Poi, others: list[_Poi], config: SyntheticPostsConfig, rng: np.random.Generator) -> str:
    feature, feature2 = rng.choice(poi.words[1:], size=2, replace=False)
    if others and rng.random() < config.other_poi_word_rate:
        feature2 = str(rng.choice(_draw_poi(others, rng).words[1:]))
    shared, shared2 = rng.choice(SHARED_WORDS, size=2, replace=False)
    text = str(rng.choice(TEMPLATES)).format(
        time=rng.choice(TIMES),
        name=poi.name,
        feature=feature,
        feature2=feature2,
        adj=rng.choice(ADJECTIVES),
        shared=shared,
        shared2=shared2,
    )
    words = [(_typo(w, rng) if rng.random() < config.typo_rate else w) for w in text.split(" ")]
    return " ".join(words)


def _hashtags(poi: _Poi, others: list[_Poi], config: SyntheticPostsConfig, rng: np.random.Generator) -> list[str]:
    n_own = int(rng.integers(1, 4))
    tags = [str(t) for t in rng.choice(poi.tags, size=n_own, replace=False)]
    tags += [str(t) for t in rng.choice(SHARED_TAGS, size=int(rng.integers(0, 3)), replace=False)]
    if others and rng.random() < config.other_poi_word_rate:
        tags.append(str(rng.choice(_draw_poi(others, rng).tags)))
    return [(_typo(t, rng) if rng.random() < config.typo_rate else t) for t in tags]


# --- writing -------------------------------------------------------------------------------


def generate(out_dir: str | Path, config: SyntheticPostsConfig = SyntheticPostsConfig()) -> SyntheticResult:
    """Write a synthetic data set to ``out_dir`` (replaced atomically if it holds a previous one); the config
    checked itself when it was made."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not _is_synthetic(out_dir):
        raise PostlocError(f"{out_dir} exists and is not a synthetic data set; refusing to replace it")
    results: list[SyntheticResult] = []
    write_folder_atomically(out_dir, lambda work: results.append(_write(work, config)))
    result = results[0]
    result.out_dir = out_dir
    return result


def _is_synthetic(path: Path) -> bool:
    try:
        return bool(read_small_json(path / "manifest.json").get("synthetic"))
    except (OSError, ValueError):
        return False


def _write(work: Path, config: SyntheticPostsConfig) -> SyntheticResult:
    rng = np.random.default_rng(config.seed)
    pois = _make_pois(config, rng)
    total = config.pois * config.posts_per_poi
    n_users = config.users or max(10, total // 6)
    (work / "images").mkdir()
    start = datetime(2023, 1, 1, tzinfo=UTC)
    counts = {"posts": 0, "images": 0, "selfie": 0, "tourist": 0, "no_image": 0, "no_text": 0, "no_hashtags": 0}
    with open(work / "posts.jsonl", "w", encoding="utf-8", newline="\n") as jsonl:
        for poi in pois:
            others = [p for p in pois if p is not poi]
            for k in range(config.posts_per_poi):
                post_rng = np.random.default_rng([config.seed, poi.index, k])
                record = _post(poi, others, k, config, post_rng, work, start, n_users, counts)
                jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(work / "pois.csv", "w", encoding="utf-8", newline="\n") as handle:
        handle.write("poi,lat,lon,name\n")
        for p in pois:
            handle.write(f"{p.poi},{p.lat:.6f},{p.lon:.6f},{p.name}\n")
    manifest = {
        "synthetic": True,
        "generator": "postloc.datasets.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": asdict(config),
        "counts": counts,
        "pois": [{"poi": p.poi, "name": p.name, "landmark": p.landmark} for p in pois],
        "person_photo": "Grace Hopper portrait (public domain, U.S. Navy); see postloc/vision/assets/NOTICE.md",
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (work / "README.md").write_text(_README.format(**counts, pois=config.pois, seed=config.seed))
    return SyntheticResult(work, counts["posts"], counts["images"], config.pois, manifest)


def _post(
    poi: _Poi,
    others: list[_Poi],
    k: int,
    config: SyntheticPostsConfig,
    rng: np.random.Generator,
    work: Path,
    start: datetime,
    n_users: int,
    counts: dict[str, int],
) -> dict[str, Any]:
    post_id = f"syn-p{poi.index:03d}-{k:05d}"
    has_image = rng.random() >= config.missing_image_rate
    has_text = rng.random() >= config.missing_text_rate
    has_tags = rng.random() >= config.missing_hashtags_rate
    if not (has_image or has_text or has_tags):
        has_text = True
    person = "none"
    images: list[str] = []
    if has_image:
        roll = rng.random()
        person = (
            "selfie"
            if roll < config.selfie_rate
            else ("tourist" if roll < config.selfie_rate + config.tourist_rate else "none")
        )
        n = 2 if rng.random() < config.second_image_rate else 1
        for j in range(n):
            scene = render_scene(poi, config, rng)
            if j == 0 and person != "none":
                scene = paste_person(scene, person, rng)
            name = f"images/{post_id}{'' if j == 0 else f'_{j}'}.jpg"
            quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
            scene.save(work / name, "JPEG", quality=quality, comment=COMMENT)
            images.append(name)
        counts["images"] += n
        if person != "none":
            counts[person] += 1
    else:
        counts["no_image"] += 1
    counts["no_text"] += not has_text
    counts["no_hashtags"] += not has_tags
    counts["posts"] += 1
    lat = poi.lat + rng.normal(0, config.post_sigma_m) / 110_574
    lon = poi.lon + rng.normal(0, config.post_sigma_m) / (111_320 * math.cos(math.radians(poi.lat)))
    user = int(rng.integers(0, n_users))
    record: dict[str, Any] = {
        "id": post_id,
        "text": _caption(poi, others, config, rng) if has_text else "",
        "hashtags": _hashtags(poi, others, config, rng) if has_tags else [],
        "poi": poi.poi,
        "poi_name": poi.name,
        "lat": round(lat, 6),
        "lon": round(lon, 6),
        "user": f"syn-user-{user:05d}",
        "created": (start + timedelta(minutes=int(rng.integers(0, 365 * 24 * 60)))).isoformat(),
        "synthetic": True,
        "syn_person": person,
    }
    if images:
        record["image"] = images
    return record


_README = """# SYNTHETIC DATA - not real posts, not real places

Generated by `postloc synthetic` (postloc.datasets.synthetic, seed {seed}). Every post, caption,
hashtag, coordinate and image here was made up by a program:

- {posts} posts at {pois} invented points of interest (ids start with `syn-`, each record has
  `"synthetic": true`, `manifest.json` has `"synthetic": true`);
- {images} procedurally rendered images; {selfie} posts carry a "selfie" (a real person photo pasted over
  most of the frame: the public-domain portrait of Grace Hopper) and {tourist} a smaller "tourist" person,
  to exercise the portrait filter; the field `syn_person` says which;
- {no_image} posts without image, {no_text} without caption, {no_hashtags} without hashtags.

Numbers measured on this data describe the code, not the MRLF paper's Instagram data sets: label them
synthetic wherever they are reported.

Use: `postloc prepare posts.jsonl --pois pois.csv --out prepared` (lower `--min-poi-posts` and
`--min-hashtag-count` for small sets), then `postloc images prepared`.
"""
