"""Draw the demo directory's synthetic people (CC0): `python avtrz/avatars/demo/draw_people.py`.

Each demo profile shows a different person. YuNet finds these drawn faces; `ada-demo` is a small
figure off-centre in a wide room and `grace-demo` a tall half-length photo, so the demo shows the
face framing at work (`imaging.framing_boxes`).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


HERE = Path(__file__).resolve().parent


def person(img: Image.Image, cx: float, top: float, scale: float, *, skin, hair, shirt, style: str) -> None:
    """A head-and-shoulders figure whose face is ~170 x 240 px at scale 1, its top at ``top``."""
    draw = ImageDraw.Draw(img)

    def s(value: float) -> int:
        return round(value * scale)

    face = (cx - s(95), top + s(40), cx + s(95), top + s(285))
    if style == "long":  # long hair behind the shoulders
        draw.rounded_rectangle((cx - s(130), top + s(10), cx + s(130), top + s(420)), radius=s(110), fill=hair)
    draw.pieslice((cx - s(150), top + s(330), cx + s(150), top + s(560)), 180, 360, fill=shirt)
    draw.rectangle((cx - s(150), top + s(440), cx + s(150), top + s(700)), fill=shirt)
    draw.rectangle((cx - s(35), top + s(250), cx + s(35), top + s(350)), fill=skin)
    draw.ellipse(face, fill=skin)
    if style == "long":
        draw.pieslice((cx - s(105), top + s(20), cx + s(105), top + s(190)), 180, 360, fill=hair)
        draw.polygon([(cx - s(100), top + s(105)), (cx + s(20), top + s(105)), (cx - s(95), top + s(180))], fill=hair)
    elif style == "bun":
        draw.ellipse((cx - s(45), top - s(25), cx + s(45), top + s(60)), fill=hair)
        draw.pieslice((cx - s(100), top + s(25), cx + s(100), top + s(200)), 180, 360, fill=hair)
    for side in (-1, 1):
        ex = cx + side * s(40)
        draw.ellipse((ex - s(16), top + s(125), ex + s(16), top + s(145)), fill="white")
        draw.ellipse((ex - s(7), top + s(128), ex + s(7), top + s(142)), fill=(35, 35, 35))
        if style == "long":  # glasses
            draw.ellipse((ex - s(30), top + s(110), ex + s(30), top + s(160)), outline=(40, 40, 40), width=max(1, s(5)))
        if style == "bun":  # earrings
            draw.ellipse((cx + side * s(95) - s(8), top + s(190), cx + side * s(95) + s(8), top + s(206)), fill="gold")
    if style == "long":
        draw.line((cx - s(10), top + s(135), cx + s(10), top + s(135)), fill=(40, 40, 40), width=max(1, s(5)))
    draw.arc((cx - s(38), top + s(180), cx + s(38), top + s(230)), 20, 160, fill=(140, 50, 60), width=max(1, s(5)))


def ada() -> Image.Image:
    """A small figure standing at the right of a wide, bright room (face ~1/7 of the height)."""
    img = Image.new("RGB", (1200, 900), (232, 228, 218))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 620, 1200, 900), fill=(150, 120, 90))
    draw.rectangle((90, 120, 430, 470), fill=(178, 208, 232))
    draw.line((260, 120, 260, 470), fill=(232, 228, 218), width=10)
    draw.ellipse((520, 430, 640, 640), fill=(60, 120, 70))
    person(img, 870, 300, 0.55, skin=(236, 196, 170), hair=(150, 60, 30), shirt=(40, 130, 100), style="long")
    return img.filter(ImageFilter.SMOOTH)


def grace() -> Image.Image:
    """A tall half-length photo with the face in the upper third."""
    img = Image.new("RGB", (600, 900), (205, 214, 226))
    person(img, 300, 160, 0.7, skin=(196, 150, 120), hair=(190, 190, 195), shirt=(30, 45, 90), style="bun")
    return img


if __name__ == "__main__":
    ada().save(HERE / "ada-demo.jpg", quality=88)
    grace().save(HERE / "grace-demo.jpg", quality=88)
