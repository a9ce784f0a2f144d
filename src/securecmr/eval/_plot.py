"""Precision-recall curves as a PNG drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_pr_curves"]

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
_W, _H, _M = 420, 360, 50  # panel size and margin


def _panel(draw: Any, ox: int, title: str, curves: list[tuple[str, list[float], list[float]]]) -> None:
    x0, y0, x1, y1 = ox + _M, 30, ox + _W - 15, _H - _M
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    draw.text((ox + _W // 2 - 4 * len(title), 8), title, fill=(0, 0, 0))
    for i in range(6):
        v = i / 5
        gx = x0 + v * (x1 - x0)
        gy = y1 - v * (y1 - y0)
        draw.line([(gx, y1), (gx, y1 + 4)], fill=(0, 0, 0))
        draw.line([(x0 - 4, gy), (x0, gy)], fill=(0, 0, 0))
        draw.text((gx - 8, y1 + 8), f"{v:.1f}", fill=(0, 0, 0))
        draw.text((x0 - 30, gy - 6), f"{v:.1f}", fill=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 15, y1 + 24), "recall", fill=(0, 0, 0))
    draw.text((ox + 2, y0 - 16), "precision", fill=(0, 0, 0))
    for n, (name, precision, recall) in enumerate(curves):
        colour = _COLOURS[n % len(_COLOURS)]
        pts = [
            (x0 + r * (x1 - x0), y1 - p * (y1 - y0))
            for p, r in zip(precision, recall, strict=True)
            if p > 0 or r > 0
        ]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for px, py in pts:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.line([(x1 - 90, y0 + 12 + 14 * n), (x1 - 70, y0 + 12 + 14 * n)], fill=colour, width=2)
        draw.text((x1 - 65, y0 + 6 + 14 * n), name, fill=(0, 0, 0))


def plot_pr_curves(report: dict[str, Any], path: str | Path) -> Path:
    """Write the Hamming-radius precision-recall curves of an :func:`evaluate` report (run with
    ``curves=True``): one panel per direction, one line per code length."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (2 * _W, _H + 20), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (key, label) in enumerate((("pr_i2t", "image -> text"), ("pr_t2i", "text -> image"))):
        curves = [
            (f"{row['bits']} bits", row[key]["precision"], row[key]["recall"])
            for row in report["results"]
            if key in row
        ]
        _panel(draw, i * _W, f"{report['dataset']} {report['method']} {label}", curves)
    draw.text((10, _H + 2), f"protocol: {report['protocol']}", fill=(0, 0, 0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")
    return out
