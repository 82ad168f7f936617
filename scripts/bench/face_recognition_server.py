"""The comparison service for scripts/bench-vs-face-recognition.

A WebSocket face recognition service written the way a `face_recognition` user writes one: one
process, one worker, the library's defaults. Every binary message is an image; the answer is
`{"status": "ok", "faces": [{"name", "top", "right", "bottom", "left"}, ...]}`, or `null` when
the message is not a decodable image. Faces are matched against one photo per identity, enrolled
at start from a folder (`<name>.jpg`, as the `face_recognition` command line tool does) with the
library's tolerance of 0.6.

    python face_recognition_server.py --port 8765 KNOWN_PEOPLE_DIR

It is a benchmark baseline, not part of ddfr: ddfr never runs Python.
"""

import argparse
import asyncio
import io
import json
import pathlib
import sys

import face_recognition
import numpy as np
from PIL import Image
from websockets.asyncio.server import serve

TOLERANCE = 0.6
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def enroll(folder):
    """One encoding per image file, named after the file."""
    names, encodings = [], []
    for path in sorted(pathlib.Path(folder).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image = face_recognition.load_image_file(path)
        found = face_recognition.face_encodings(image)
        if not found:
            print(f"no face in {path.name}, skipped", file=sys.stderr)
            continue
        names.append(path.stem)
        encodings.append(found[0])
    return names, encodings


def recognize(data, names, known):
    """The reply to one frame: the faces with their names, or None if `data` is no image."""
    try:
        image = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception:  # PIL raises many kinds of errors for bad input.
        return None
    locations = face_recognition.face_locations(image)
    encodings = face_recognition.face_encodings(image, locations)
    faces = []
    for (top, right, bottom, left), encoding in zip(locations, encodings):
        name = "Unknown"
        if known:
            distances = face_recognition.face_distance(known, encoding)
            best = int(np.argmin(distances))
            if distances[best] <= TOLERANCE:
                name = names[best]
        faces.append({"name": name, "top": top, "right": right, "bottom": bottom, "left": left})
    return {"status": "ok", "faces": faces}


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("known_people", help="folder with one photo per person, <name>.jpg")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    names, known = enroll(args.known_people)
    print(f"enrolled {len(names)}: {', '.join(names)}", file=sys.stderr)

    async def handler(websocket):
        async for message in websocket:
            if isinstance(message, str):
                continue
            await websocket.send(json.dumps(recognize(message, names, known)))

    async with serve(handler, args.host, args.port, max_size=2**21) as server:
        print(f"listening on ws://{args.host}:{args.port}", file=sys.stderr, flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
