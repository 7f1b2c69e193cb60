"""The demo directory: a different person for every profile, each face found and framed."""

import json
from pathlib import Path

import pytest

from avtrz.avatars import imaging


DEMO = Path(imaging.__file__).resolve().parent / "demo"


def demo_rows() -> list[dict]:
    rows = []
    for name in ("profiles.jsonl", "source.jsonl"):
        rows += [json.loads(line) for line in (DEMO / name).read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("photo_file")]


def test_every_demo_profile_has_its_own_photo():
    rows = demo_rows()
    assert {row["handle"] for row in rows} >= {"eileen-collins", "alex-rivera", "sam-okafor", "ada-demo", "grace-demo"}
    files = [row["photo_file"] for row in rows]
    assert len(set(files)) == len(files)
    hashes = {imaging.content_hash((DEMO / name).read_bytes()) for name in files}
    assert len(hashes) == len(files)


@pytest.mark.parametrize("row", demo_rows(), ids=lambda row: row["handle"])
def test_every_demo_face_is_found_and_framed(row):
    image, face = imaging.decode_and_detect((DEMO / row["photo_file"]).read_bytes())
    assert face is not None
    boxes = imaging.framing_boxes(*image.size, face)
    left, _, right, _ = boxes[128]
    assert face[3] / (right - left) >= 0.3  # head and shoulders, not the whole scene
