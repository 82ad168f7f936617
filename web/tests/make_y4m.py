"""Writes a Y4M video (what Chromium's fake camera reads) showing still photos, letterboxed.

Usage: make_y4m.py OUT.y4m WIDTH HEIGHT FRAMES_PER_PHOTO PHOTO [PHOTO...]
A test helper only: the photos come from $DDFR_TESTDATA and the output goes to a temp dir.
"""

import sys

from PIL import Image


def frame_bytes(path, width, height):
    photo = Image.open(path).convert("RGB")
    photo.thumbnail((width, height))
    canvas = Image.new("RGB", (width, height), (40, 40, 40))
    canvas.paste(photo, ((width - photo.width) // 2, (height - photo.height) // 2))
    y, cb, cr = canvas.convert("YCbCr").split()
    half = (width // 2, height // 2)
    return y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()


def main():
    out, width, height, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for path in sys.argv[5:]:
            data = frame_bytes(path, width, height)
            for _ in range(repeat):
                f.write(b"FRAME\n" + data)


if __name__ == "__main__":
    main()
