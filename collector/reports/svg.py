"""Inline SVG charts made in Python: a bar chart, shares against target lines, a line chart.

No scripts and no external resources, so the report opens offline and in a mail client; every
figure a chart shows is also written as text in the SVG (and in the tables), so it can be read
without the graphics and checked in a browser test.
"""

from __future__ import annotations

from html import escape

FONT = "font-family=\"'Noto Sans CJK SC','WenQuanYi Zen Hei','Microsoft YaHei',sans-serif\""
PALETTE = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#00838f", "#b7791f",
           "#4a5568", "#d53f8c", "#319795")
DASH = "\u2013"  # en dash: "no figure"
# Access tiers from "no test" (grey) through slow (red) to gigabit (green).
TIER_COLORS = ("#a0aec0", "#c53030", "#dd6b20", "#d69e2e", "#68a357", "#2f855a")
GOOD, BAD, NEUTRAL = "#2f855a", "#c53030", "#718096"


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: int = 12,
          fill: str = "#1a202c", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{fill}"{klass}>{escape(text)}</text>')


def bar_chart(labels: list[str], values: list[int], *, title: str,
              colors: tuple[str, ...] = PALETTE, width: int = 640, height: int = 280) -> str:
    """Vertical bars with their values on top."""
    left, right, top, bottom = 40, 10, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([*values, 1])
    slot = plot_w / max(len(values), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>',
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
             'stroke="#a0aec0"/>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top_value
        x = left + i * slot + slot * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="{colors[i % len(colors)]}"/>')
        parts.append(_text(x + slot * 0.35, top + plot_h - h - 6, str(value), cls="bar-value"))
        parts.append(_text(x + slot * 0.35, top + plot_h + 18, label))
    parts.append("</svg>")
    return "".join(parts)


def share_chart(items: list[tuple[str, float | None, float]], *, title: str,
                width: int = 720) -> str:
    """One horizontal bar per rule (share 0-100 %) with its target as a vertical line."""
    label_w, right, row_h, top = 260, 90, 30, 24
    plot_w = width - label_w - right
    height = top + row_h * len(items) + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>',
             f"<title>{escape(title)}</title>"]
    for pct in (0, 50, 100):
        x = label_w + plot_w * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 20}" '
                     'stroke="#e2e8f0"/>')
        parts.append(_text(x, height - 6, f"{pct} %", size=10, fill="#718096"))
    for i, (label, share, target) in enumerate(items):
        y = top + i * row_h
        parts.append(_text(label_w - 8, y + 15, label, anchor="end"))
        if share is None:
            parts.append(_text(label_w + 4, y + 15, DASH, anchor="start", fill=NEUTRAL))
        else:
            color = GOOD if share >= target - 1e-9 else BAD
            parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{plot_w * share / 100:.1f}" '
                         f'height="{row_h - 10}" fill="{color}" opacity="0.85"/>')
            parts.append(_text(label_w + plot_w + 6, y + 15, f"{share:.1f} %", anchor="start",
                               cls="share-value"))
        tx = label_w + plot_w * target / 100
        parts.append(f'<line x1="{tx:.1f}" y1="{y + 1}" x2="{tx:.1f}" y2="{y + row_h - 3}" '
                     'stroke="#1a202c" stroke-width="2.5" class="target-line"/>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(x_labels: list[str], series: list[tuple[str, list[float | None]]], *,
               title: str, width: int = 720, height: int = 300) -> str:
    """Shares (0-100 %) over time, one line per series, with a legend."""
    left, right, top = 44, 28, 16  # right: room for the last date label
    legend_h = 18 * ((len(series) + 1) // 2)
    bottom = 34 + legend_h
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h * (1 - v / 100)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>',
             f"<title>{escape(title)}</title>"]
    for pct in (0, 25, 50, 75, 100):
        parts.append(f'<line x1="{left}" y1="{py(pct):.1f}" x2="{width - right}" '
                     f'y2="{py(pct):.1f}" stroke="#e2e8f0"/>')
        parts.append(_text(left - 4, py(pct) + 4, f"{pct}%", anchor="end", size=10,
                           fill="#718096"))
    step = max(1, n // 10)
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            parts.append(_text(px(i), top + plot_h + 16, label, size=10))
    for k, (name, values) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        points = [(px(i), py(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                         'stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'
                     for x, y in points)
        lx = left + (k % 2) * (plot_w / 2)
        ly = top + plot_h + 34 + 18 * (k // 2)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="12" height="4" fill="{color}"/>')
        parts.append(_text(lx + 16, ly - 4, name, anchor="start", size=11))
    parts.append("</svg>")
    return "".join(parts)
