"""Grid images as the WebUI draws them (modules/images.py image_grid, draw_grid_annotations,
draw_prompt_matrix): cells in rows, a legend above and left of them, margins between cells. Our own
drawing with PIL's default font; the layout (sizes, paddings, positions) follows the WebUI."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)  # the WebUI's grid_background_color default
ACTIVE, INACTIVE = (0, 0, 0), (153, 153, 153)


@dataclass
class Annotation:
    """One legend line; an inactive one (prompt matrix: the part left out) is grey and struck through."""

    text: str = ""
    active: bool = True
    size: tuple[int, int] = (0, 0)
    allowed_width: int = 0


def image_grid(images: list[Image.Image], rows: int) -> Image.Image:
    """`rows` rows of ceil(n / rows) cells each the largest image's size, smaller images centred."""
    cols = math.ceil(len(images) / rows)
    w, h = (max(sizes) for sizes in zip(*(image.size for image in images)))
    grid = Image.new("RGB", (cols * w, rows * h), BACKGROUND)
    for i, image in enumerate(images):
        dx, dy = (w - image.width) // 2, (h - image.height) // 2
        grid.paste(image, (i % cols * w + dx, i // cols * h + dy))
    return grid


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(max(size, 1))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> list[str]:
    lines = [""]
    for word in text.split():
        line = f"{lines[-1]} {word}".strip()
        if draw.textlength(line, font=font) <= width:  # type: ignore[arg-type]
            lines[-1] = line
        else:
            lines.append(word)
    return lines


def _measure(groups: list[list[Annotation]], widths: list[int], font: object) -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for group, width in zip(groups, widths):
        items = list(group)
        group.clear()
        for item in items:
            group += [Annotation(line, item.active) for line in _wrap(draw, item.text, font, width)]
        for line in group:
            left, top, right, bottom = draw.multiline_textbbox((0, 0), line.text, font=font)  # type: ignore[arg-type]
            line.size, line.allowed_width = (int(right - left), int(bottom - top)), width


def _draw_lines(draw: ImageDraw.ImageDraw, x: float, y: float, lines: list[Annotation], size: int, gap: int) -> None:
    for line in lines:
        font, fontsize = _font(size), size
        # A line too wide for its cell shrinks until it fits, as the WebUI does.
        while draw.multiline_textbbox((0, 0), line.text, font=font)[2] > line.allowed_width and fontsize > 1:
            fontsize -= 1
            font = _font(fontsize)
        colour = ACTIVE if line.active else INACTIVE
        draw.multiline_text((x, y + line.size[1] / 2), line.text, font=font, fill=colour, anchor="mm", align="center")
        if not line.active:
            half_w, half_h = line.size[0] // 2, line.size[1] // 2
            draw.line((x - half_w, y + half_h, x + half_w, y + half_h), fill=INACTIVE, width=4)
        y += line.size[1] + gap


def annotate(
    grid: Image.Image,
    width: int,
    height: int,
    columns: list[list[Annotation]],
    rows: list[list[Annotation]],
    margin: int = 0,
) -> Image.Image:
    """The grid with column texts above and row texts left of its `width` x `height` cells, `margin` px apart.

    Font size (width + height) // 25, line gap half of it; the left band is 3/4 of a cell wide when any
    row has text, the top band as tall as the tallest column text plus two gaps when any column has."""
    fontsize = (width + height) // 25
    gap = fontsize // 2
    font = _font(fontsize)
    pad_left = 0 if sum(len(a.text) for group in rows for a in group) == 0 else width * 3 // 4
    cols, nrows = grid.width // width, grid.height // height
    if cols != len(columns) or nrows != len(rows):
        raise ValueError(f"legend for {len(columns)}x{len(rows)} cells on a {cols}x{nrows} grid")
    _measure(columns + rows, [width] * len(columns) + [pad_left] * len(rows), font)
    col_heights = [sum(a.size[1] + gap for a in group) - gap for group in columns]
    row_heights = [sum(a.size[1] + gap for a in group) - gap * len(group) for group in rows]
    pad_top = 0 if sum(col_heights) == 0 else max(col_heights) + gap * 2

    size = (grid.width + pad_left + margin * (cols - 1), grid.height + pad_top + margin * (nrows - 1))
    result = Image.new("RGB", size, BACKGROUND)
    for row in range(nrows):
        for col in range(cols):
            cell = grid.crop((width * col, height * row, width * (col + 1), height * (row + 1)))
            result.paste(cell, (pad_left + (width + margin) * col, pad_top + (height + margin) * row))
    draw = ImageDraw.Draw(result)
    for col, group in enumerate(columns):
        x = pad_left + (width + margin) * col + width / 2
        _draw_lines(draw, x, pad_top / 2 - col_heights[col] / 2, group, fontsize, gap)
    for row, group in enumerate(rows):
        y = pad_top + (height + margin) * row + height / 2 - row_heights[row] / 2
        _draw_lines(draw, pad_left / 2, y, group, fontsize, gap)
    return result


def labels(texts: list[str]) -> list[list[Annotation]]:
    return [[Annotation(text)] for text in texts]


def prompt_matrix_legend(parts: list[str]) -> tuple[list[list[Annotation]], list[list[Annotation]]]:
    """draw_prompt_matrix's texts: the first half of the variable parts across, the rest down, each cell
    showing every part of its half, grey and struck through where that combination leaves it out."""
    variable = parts[1:]
    boundary = math.ceil(len(variable) / 2)
    across, down = variable[:boundary], variable[boundary:]
    columns = [[Annotation(t, bool(pos & (1 << i))) for i, t in enumerate(across)] for pos in range(1 << len(across))]
    rows = [[Annotation(t, bool(pos & (1 << i))) for i, t in enumerate(down)] for pos in range(1 << len(down))]
    return columns, rows
