"""Pillow decodes a large JPEG at full size: a file of ~10 MB becomes hundreds of MiB of pixels
(allocated by Pillow in C, invisible to tracemalloc). draft() lets libjpeg decode at 1/8 scale."""

from __future__ import annotations

import math
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import cached_input, scenario_app
from PIL import Image

description = "Pillow decodes a ~10 MB JPEG to hundreds of MiB of pixels; fixed: draft()/thumbnail decode reduced"
app = scenario_app("image-decode")
PARAMS = [
    Param("megapixels", 64, "size of the generated JPEG (3 bytes per pixel once decoded)"),
    Param("thumbnail", 256, "edge of the thumbnail each task makes"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2, "tasks": 4}
VARIANTS = [
    Variant("bad", "Image.open(path).convert('RGB').resize(...): full-size decode, then a full-size copy"),
    Variant("fixed", "img.draft('RGB', size) then img.thumbnail(size): libjpeg decodes at up to 1/8 scale"),
]
TILE = 500


@app.task(name="image_decode.make_thumbnail")
def make_thumbnail(path: str, edge: int, reduced: bool) -> list[int]:
    size = (edge, edge)
    with Image.open(path) as image:
        if reduced:
            image.draft("RGB", size)
            image.thumbnail(size)
            return list(image.size)
        return list(image.convert("RGB").resize(size).size)


def _write_jpeg(megapixels: float):
    def make(path: str) -> None:
        width = int(math.sqrt(megapixels * 1e6 * 4 / 3))
        height = int(width * 3 / 4)
        # a gradient with tiled noise: compresses like a photo (~1.2 bits per pixel), made in ~2 s
        gradient = Image.merge(
            "RGB", [Image.linear_gradient("L"), Image.radial_gradient("L"), Image.linear_gradient("L").rotate(90)]
        ).resize((width, height))
        tile = Image.merge("RGB", [Image.effect_noise((TILE, TILE), sigma) for sigma in (20, 30, 40)])
        noise = Image.new("RGB", (width, height))
        for x in range(0, width, TILE):
            for y in range(0, height, TILE):
                noise.paste(tile, (x, y))
        Image.blend(gradient, noise, 0.25).save(path, format="JPEG", quality=85)

    return make


def plan(ctx: RunContext) -> Plan:
    megapixels = ctx.params["megapixels"]
    path = cached_input(ctx.input_path(f"photo-{megapixels:g}MP.jpg"), _write_jpeg(megapixels))
    reduced = ctx.variant == "fixed"
    return Plan(
        [
            TaskCall(make_thumbnail.name, (path, ctx.params["thumbnail"], reduced), label=f"{megapixels:g} MP JPEG")
            for _ in range(ctx.tasks or DEFAULTS["tasks"])
        ],
        timeout=60.0,
    )
