import io

from PIL import Image

from avtrz.avatars.monogram import monogram_colour
from mcpserver.images import monogram_png


def colours(label: str, size: int = 64) -> set[str]:
    image = Image.open(io.BytesIO(monogram_png(label, size))).convert("RGB")
    assert image.size == (size, size)
    return {"#{:02X}{:02X}{:02X}".format(*pixel) for _count, pixel in image.getcolors(maxcolors=size * size)}


def test_initials_are_drawn_in_white_on_the_monogram_colour():
    drawn = colours("Grace Hopper")
    assert monogram_colour("Grace Hopper") in drawn and "#FFFFFF" in drawn


def test_a_script_the_font_lacks_gets_the_plain_colour_square():
    assert colours("山田 太郎") == {monogram_colour("山田 太郎")}
