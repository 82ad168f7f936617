#!/usr/bin/env python3
"""Convert dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) to ONNX.

dlib stores a network as a nested serialization stream with no type information: the reader has
to know the network's template structure and deserialize each layer in the order dlib's own
`deserialize()` functions do. This script does exactly that for the `anet_type` network of
dlib's `examples/dnn_face_recognition_ex.cpp`, reading each field by hand (no dlib needed), and
then emits an equivalent ONNX graph with `onnx.helper`.

The field order of every record below follows dlib's `serialize()`/`deserialize()` in
dlib/dnn/core.h (add_layer, add_tag_layer, add_skip_layer, add_loss_layer), dlib/dnn/layers.h
(con_, affine_, relu_, max_pool_, avg_pool_, add_prev_, fc_), dlib/dnn/input.h
(input_rgb_image_sized), dlib/dnn/loss.h (loss_metric_), dlib/cuda/tensor.h (tensor,
alias_tensor) and dlib/serialize.h (integers, floats, bools, strings).

The ONNX graph starts at the first convolution: its input `input` is the tensor dlib's
`input_rgb_image_sized::to_tensor` builds, i.e. planar RGB `(pixel - mean[c]) / 256` with the
per-channel means stored in the file (printed with `--print-meta`). Its output `embedding` is the
raw 128-D descriptor (dlib's fc output, not normalised).

Usage: convert_dlib_resnet.py SRC.dat OUT.onnx [--print-meta]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ONNX opset and IR version of the emitted graph; opset 13 is supported by every runtime we use
# (ONNX Runtime, tract) and IR 8 is the newest IR that opset 13 tools all accept.
OPSET = 13
IR_VERSION = 8
# Side of the square input image of `input_rgb_image_sized<150>`.
INPUT_SIZE = 150
# dlib's input layer divides (pixel - mean) by this constant.
INPUT_SCALE = 256.0
PRODUCER = "ddfr scripts/models/convert_dlib_resnet.py"


class FormatError(Exception):
    """The stream does not match the structure dlib would have written for anet_type."""


# --------------------------------------------------------------------------------------------
# Primitive readers (dlib/serialize.h, dlib/cuda/tensor.h)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise FormatError("unexpected end of stream")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self) -> int:
        """One control byte (low nibble: byte count, 0x80: negative), then little-endian bytes."""
        ctrl = self.byte()
        size = ctrl & 0x0F
        if size == 0 or size > 8 or (ctrl & 0x70):
            raise FormatError(f"bad integer control byte 0x{ctrl:02x} at {self.pos - 1}")
        raw = self.data[self.pos : self.pos + size]
        if len(raw) != size:
            raise FormatError("unexpected end of stream in integer")
        self.pos += size
        value = int.from_bytes(raw, "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        """float_details: a 64-bit mantissa and a 16-bit exponent, value = m * 2^e."""
        if self.data[self.pos] & 0x70:
            raise FormatError("old ASCII float format is not supported")
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def bool(self) -> bool:
        ch = self.byte()
        if ch not in (ord("0"), ord("1")):
            raise FormatError(f"bad bool byte {ch!r} at {self.pos - 1}")
        return ch == ord("1")

    def string(self) -> str:
        n = self.int()
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("ascii")

    def tensor(self) -> np.ndarray:
        """resizable_tensor: version 2, num_samples, k, nr, nc, then raw little-endian f32."""
        version = self.int()
        if version != 2:
            raise FormatError(f"tensor version {version}, expected 2")
        dims = tuple(self.int() for _ in range(4))
        count = dims[0] * dims[1] * dims[2] * dims[3]
        end = self.pos + 4 * count
        if end > len(self.data):
            raise FormatError("tensor data runs past the end of the stream")
        arr = np.frombuffer(self.data[self.pos : end], dtype="<f4").reshape(dims).copy()
        self.pos = end
        return arr

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise FormatError(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]

    def expect_version(self, what: str, allowed: tuple[int, ...]) -> int:
        v = self.int()
        if v not in allowed:
            raise FormatError(f"{what}: version {v}, expected one of {allowed} at {self.pos}")
        return v


# --------------------------------------------------------------------------------------------
# The network structure (dnn_face_recognition_ex.cpp, anet_type), outermost layer first.


@dataclass
class Node:
    kind: str  # input | con | affine | relu | max_pool | avg_pool | add_prev | fc | tag | skip
    sub: "Node | None" = None
    cfg: dict = field(default_factory=dict)  # template parameters
    data: dict = field(default_factory=dict)  # what the stream held


def con(n, k, s, sub):
    return Node("con", sub, {"num_filters": n, "nr": k, "nc": k, "stride": s})


def affine(sub):
    return Node("affine", sub)


def relu(sub):
    return Node("relu", sub)


def tag(i, sub):
    return Node("tag", sub, {"id": i})


def skip(i, sub):
    return Node("skip", sub, {"id": i})


def add_prev(i, sub):
    return Node("add_prev", sub, {"id": i})


def avg_pool(k, s, sub):
    return Node("avg_pool", sub, {"nr": k, "nc": k, "stride": s})


def block(n, stride, sub):
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>> with BN = affine.
    return affine(con(n, 3, 1, relu(affine(con(n, 3, stride, sub)))))


def ares(n, sub):
    # relu<residual<block,N,affine,SUBNET>>, residual = add_prev1<block<N,BN,1,tag1<SUBNET>>>.
    return relu(add_prev(1, block(n, 1, tag(1, sub))))


def ares_down(n, sub):
    # relu<residual_down<...>>,
    # residual_down = add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,BN,2,tag1<SUBNET>>>>>>.
    return relu(add_prev(2, avg_pool(2, 2, skip(1, tag(2, block(n, 2, tag(1, sub)))))))


def anet_type() -> Node:
    x = Node("input")
    x = con(32, 7, 2, x)
    x = Node("max_pool", relu(affine(x)), {"nr": 3, "nc": 3, "stride": 2})
    for _ in range(3):  # alevel4
        x = ares(32, x)
    x = ares_down(64, x)  # alevel3
    for _ in range(3):
        x = ares(64, x)
    x = ares_down(128, x)  # alevel2
    for _ in range(2):
        x = ares(128, x)
    x = ares_down(256, x)  # alevel1
    for _ in range(2):
        x = ares(256, x)
    x = ares_down(256, x)  # alevel0
    # avg_pool_everything = avg_pool<0,0,1,1>; fc_no_bias<128>.
    x = Node("avg_pool", x, {"nr": 0, "nc": 0, "stride": 1})
    return Node("fc", x, {"num_outputs": 128})


# --------------------------------------------------------------------------------------------
# Deserialization, mirroring dlib's recursive deserialize() calls.


def read_details(r: Reader, node: Node) -> None:
    version = r.string()
    d = node.data
    d["version"] = version
    if node.kind == "con":
        if version not in ("con_4", "con_5", "con_6"):
            raise FormatError(f"con_: unexpected version {version}")
        d["params"] = r.tensor()
        d["num_filters"] = r.int()
        nr, nc, sy, sx = r.int(), r.int(), r.int(), r.int()
        d["padding"] = (r.int(), r.int())
        d["filters"] = r.alias_tensor()
        d["biases"] = r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        d["use_bias"] = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            if r.bool():
                raise FormatError("con_ with a fused relu is not supported")
        cfg = node.cfg
        if (nr, nc, sy, sx, d["num_filters"]) != (
            cfg["nr"], cfg["nc"], cfg["stride"], cfg["stride"], cfg["num_filters"]
        ):
            raise FormatError(f"con_ shape {(nr, nc, sy, sx, d['num_filters'])} != template {cfg}")
        # dlib's default padding: stride 1 keeps the size (nr/2), otherwise none.
        want_pad = 0 if cfg["stride"] != 1 else cfg["nr"] // 2
        if d["padding"] != (want_pad, want_pad):
            raise FormatError(f"con_ padding {d['padding']} != template default {want_pad}")
    elif node.kind == "affine":
        if version not in ("affine_", "affine_2"):
            raise FormatError(f"affine_: unexpected version {version}")
        d["params"] = r.tensor()
        d["gamma"] = r.alias_tensor()
        d["beta"] = r.alias_tensor()
        d["mode"] = r.int()
        if d["mode"] != 0:  # CONV_MODE (dlib enum value 0): one gamma/beta per channel
            raise FormatError(f"affine_ mode {d['mode']}, expected CONV_MODE (0)")
        if version == "affine_2" and r.bool():
            raise FormatError("disabled affine_ layers are not supported")
    elif node.kind == "relu":
        if version not in ("relu_", "relu_2"):
            raise FormatError(f"relu_: unexpected version {version}")
        if version == "relu_2" and r.bool():
            raise FormatError("disabled relu_ layers are not supported")
    elif node.kind in ("max_pool", "avg_pool"):
        if version != f"{node.kind}_2":
            raise FormatError(f"{node.kind}_: unexpected version {version}")
        nr, nc, sy, sx = r.int(), r.int(), r.int(), r.int()
        d["padding"] = (r.int(), r.int())
        cfg = node.cfg
        if (nr, nc, sy, sx) != (cfg["nr"], cfg["nc"], cfg["stride"], cfg["stride"]):
            raise FormatError(f"{node.kind} shape {(nr, nc, sy, sx)} != template {cfg}")
        want_pad = 0 if cfg["stride"] != 1 else cfg["nr"] // 2
        if d["padding"] != (want_pad, want_pad):
            raise FormatError(f"{node.kind} padding {d['padding']} != default {want_pad}")
    elif node.kind == "add_prev":
        if version != "add_prev_":
            raise FormatError(f"add_prev_: unexpected version {version}")
    elif node.kind == "fc":
        if version not in ("fc_2", "fc_3"):
            raise FormatError(f"fc_: unexpected version {version}")
        d["num_outputs"] = r.int()
        d["num_inputs"] = r.int()
        d["params"] = r.tensor()
        d["weights"] = r.alias_tensor()
        d["biases"] = r.alias_tensor()
        d["bias_mode"] = r.int()
        for _ in range(4):
            r.float()
        if version == "fc_3":
            r.bool()
        if d["bias_mode"] != 1:  # FC_NO_BIAS
            raise FormatError(f"fc_ bias mode {d['bias_mode']}, expected FC_NO_BIAS (1)")
        if d["num_outputs"] != node.cfg["num_outputs"]:
            raise FormatError("fc_ output count does not match the template")
    else:
        raise FormatError(f"no details reader for {node.kind}")


def read_input_layer(r: Reader) -> dict:
    version = r.string()
    if version != "input_rgb_image_sized":
        raise FormatError(f"input layer: unexpected version {version}")
    means = [r.float(), r.float(), r.float()]
    nr, nc = r.int(), r.int()
    if (nr, nc) != (INPUT_SIZE, INPUT_SIZE):
        raise FormatError(f"input size {nr}x{nc}, expected {INPUT_SIZE}")
    return {"mean_rgb": means, "size": (nr, nc)}


def read_layer(r: Reader, node: Node, meta: dict) -> None:
    assert node.sub is not None
    if node.kind in ("tag", "skip"):
        if node.sub.kind == "input":
            raise FormatError("tag/skip directly over the input layer is not expected here")
        r.expect_version(node.kind, (1,))
        read_layer(r, node.sub, meta)
        return
    if node.sub.kind == "input":
        v = r.expect_version("add_layer<input>", (2, 3))
        meta["input"] = read_input_layer(r)
        read_details(r, node)
        r.bool(), r.bool(), r.bool()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        r.tensor()  # grad_final
        if v >= 3:
            r.int()  # _sample_expansion_factor
        return
    v = r.expect_version("add_layer", (1, 2))
    read_layer(r, node.sub, meta)
    read_details(r, node)
    r.bool(), r.bool(), r.bool()
    r.tensor()  # x_grad
    r.tensor()  # cached_output
    if v == 2:
        r.tensor()  # params_grad


def read_network(data: bytes) -> tuple[Node, dict]:
    r = Reader(data)
    r.expect_version("add_loss_layer", (1,))
    loss = r.string()
    if loss != "loss_metric_2":
        raise FormatError(f"loss layer {loss}, expected loss_metric_2")
    meta: dict = {"loss": loss, "margin": r.float(), "distance_threshold": r.float()}
    net = anet_type()
    read_layer(r, net, meta)
    if r.pos != len(data):
        raise FormatError(f"{len(data) - r.pos} trailing bytes after the network")
    return net, meta


# --------------------------------------------------------------------------------------------
# ONNX emission


class Builder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.counter = 0
        self.tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
        self.counts: dict[str, int] = {}

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def const(self, prefix: str, arr: np.ndarray) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def op(self, op_type: str, inputs: list[str], prefix: str, **attrs) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def pad_to(self, x: str, shape, target) -> str:
        """Zero-pads channels/rows/cols at their end, like dlib's tt::add on mismatched dims."""
        if tuple(shape) == tuple(target):
            return x
        pads = [0, 0, 0, 0, 0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]]
        p = self.const("pads", np.array(pads, dtype=np.int64))
        return self.op("Pad", [x, p], "pad", mode="constant")

    def emit(self, node: Node, x_in: str) -> tuple[str, tuple[int, int, int]]:
        """Returns the ONNX value name and (C, H, W) of node's output."""
        kind = node.kind
        if kind == "input":
            return x_in, (3, INPUT_SIZE, INPUT_SIZE)
        x, (c, h, w) = self.emit(node.sub, x_in)
        d = node.data
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "tag":
            self.tags[node.cfg["id"]] = (x, (c, h, w))
            return x, (c, h, w)
        if kind == "skip":
            return self.tags[node.cfg["id"]]
        if kind == "con":
            nf, k, s = node.cfg["num_filters"], node.cfg["nr"], node.cfg["stride"]
            params = d["params"].reshape(-1)
            nw = nf * c * k * k
            expected = nw + (nf if d["use_bias"] else 0)
            if params.size != expected or d["filters"] != (nf, c, k, k):
                raise FormatError(f"con_ params {params.size} / filters {d['filters']} mismatch")
            wname = self.const("conv_w", params[:nw].reshape(nf, c, k, k))
            inputs = [x, wname]
            if d["use_bias"]:
                inputs.append(self.const("conv_b", params[nw:]))
            py, px = d["padding"]
            y = self.op(
                "Conv", inputs, "conv", kernel_shape=[k, k], strides=[s, s], pads=[py, px, py, px]
            )
            return y, (nf, 1 + (h + 2 * py - k) // s, 1 + (w + 2 * px - k) // s)
        if kind == "affine":
            p = d["params"].reshape(-1)
            if p.size != 2 * c or d["gamma"] != (1, c, 1, 1) or d["beta"] != (1, c, 1, 1):
                raise FormatError("affine_ params do not match the channel count")
            g = self.const("affine_gamma", p[:c].reshape(c, 1, 1))
            b = self.const("affine_beta", p[c:].reshape(c, 1, 1))
            y = self.op("Mul", [x, g], "affine_mul")
            return self.op("Add", [y, b], "affine_add"), (c, h, w)
        if kind == "relu":
            return self.op("Relu", [x], "relu"), (c, h, w)
        if kind in ("max_pool", "avg_pool"):
            kh, kw, s = node.cfg["nr"], node.cfg["nc"], node.cfg["stride"]
            py, px = d["padding"]
            if kh == 0 and kw == 0:
                # avg_pool_everything: the window is the whole image.
                if kind != "avg_pool":
                    raise FormatError("max_pool over everything is not expected")
                return self.op("GlobalAveragePool", [x], "gap"), (c, 1, 1)
            attrs = dict(kernel_shape=[kh, kw], strides=[s, s], pads=[py, px, py, px])
            if kind == "max_pool":
                y = self.op("MaxPool", [x], "maxpool", **attrs)
            else:
                # dlib averages over the clipped window, i.e. padding is not counted.
                y = self.op("AveragePool", [x], "avgpool", count_include_pad=0, **attrs)
            return y, (c, 1 + (h + 2 * py - kh) // s, 1 + (w + 2 * px - kw) // s)
        if kind == "add_prev":
            t, tshape = self.tags[node.cfg["id"]]
            target = tuple(max(a, b) for a, b in zip((c, h, w), tshape))
            a = self.pad_to(x, (c, h, w), target)
            b = self.pad_to(t, tshape, target)
            return self.op("Add", [a, b], "add_prev"), target
        if kind == "fc":
            n_in = c * h * w
            wshape = d["weights"]
            if d["num_inputs"] != n_in or wshape != (n_in, d["num_outputs"], 1, 1):
                raise FormatError(f"fc_ inputs {d['num_inputs']} / weights {wshape} mismatch")
            wmat = d["params"].reshape(-1)[: n_in * d["num_outputs"]]
            wname = self.const("fc_w", wmat.reshape(n_in, d["num_outputs"]))
            flat = self.op("Flatten", [x], "flatten", axis=1)
            return self.op("MatMul", [flat, wname], "fc"), (d["num_outputs"], 1, 1)
        raise FormatError(f"cannot emit {kind}")


def build_onnx(net: Node, meta: dict) -> onnx.ModelProto:
    b = Builder()
    out, shape = b.emit(net, "input")
    # Give the output its public name with a final Identity so names stay stable.
    b.nodes.append(helper.make_node("Identity", [out], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        b.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", shape[0]])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version="1",
        ir_version=IR_VERSION,
    )
    mean = meta["input"]["mean_rgb"]
    model.doc_string = (
        "dlib_face_recognition_resnet_model_v1 (dlib, public domain weights) converted by ddfr. "
        f"input = planar RGB (pixel - mean) / {INPUT_SCALE:g}, mean = {mean}; "
        "embedding = dlib's raw 128-D descriptor."
    )
    meta["layer_counts"] = b.counts
    onnx.checker.check_model(model)
    return model


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--print-meta", action="store_true", help="print what the stream held as JSON")
    args = ap.parse_args(argv)
    with open(args.src, "rb") as f:
        data = f.read()
    try:
        net, meta = read_network(data)
        model = build_onnx(net, meta)
    except FormatError as e:
        print(f"convert_dlib_resnet: {args.src}: {e}", file=sys.stderr)
        return 1
    blob = model.SerializeToString(deterministic=True)
    with open(args.dst, "wb") as f:
        f.write(blob)
    if args.print_meta:
        # float32 repr of the means, which is what dlib keeps in memory.
        meta["input"]["mean_rgb_f32"] = [float(str(np.float32(m))) for m in meta["input"]["mean_rgb"]]
        print(json.dumps(meta, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
