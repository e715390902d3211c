#!/usr/bin/env python3
"""Export a PyTorch network to a `metamers` model file (safetensors).

A model file is the network's state_dict (float32, PyTorch names and layouts)
plus `__metadata__` JSON strings: `architecture` (the layer list `metamers`
runs), `front_end` (the cochleagram the network hears) and `classes.<task>`
(label lists). See model/export/README.md.

    # a checkpoint of Feather et al.'s CochCNN9 ("kell2018" in their code)
    python3 export_pytorch.py --checkpoint ckpt.pt --strip-prefix module.model. \
        --arch cochcnn9-feather --classes word=words.txt --out word_net.safetensors
    # any network: describe it in an architecture JSON file
    python3 export_pytorch.py --checkpoint net.pt --arch arch.json \
        --front-end default --classes word=w.txt --classes genre=g.txt --out net.safetensors
    # no torch needed: a small fake network, and a check against `metamers represent`
    python3 export_pytorch.py --selftest small.safetensors
    python3 export_pytorch.py --verify small.safetensors represent_out.safetensors

Everything but reading a checkpoint is plain Python 3 (struct, json, array):
torch is imported only by --checkpoint. Before writing, every tensor the
architecture needs is checked against the state_dict by name and shape, with
the same shape rules as the C loader (model/arch.c), so a mismatch is reported
here, naming the tensor, rather than when the file is loaded.
"""
import argparse
import array
import json
import math
import random
import struct
import sys

# ------------------------------------------------------------ front ends

# The presets of model/front_end.c (`metamers represent --front-end NAME`).
_FE_COMMON = {"low_lim": 50, "full_filter": False, "envelope": "hilbert",
              "downsampling": {"type": "sinc_kaiser", "window_size": 1001, "beta": 5},
              "compression": {"type": "clipped_grad_power", "scale": 1, "offset": 1e-08,
                              "clip_value": 5, "power": 0.3}}
FRONT_ENDS = {
    "cochleagram_1": dict(_FE_COMMON, sr=20000, signal_size=40000, n=50, high_lim=10000,
                          sample_factor=4, env_sr=200),
    "default": dict(_FE_COMMON, sr=20000, signal_size=40000, n=40, high_lim=10000,
                    sample_factor=1, env_sr=100),
}
# Cochleagram shape [channels, frames] of each preset (`metamers stages`).
FRONT_END_SHAPES = {"cochleagram_1": [211, 390], "default": [42, 195]}

# ------------------------------------------------------------ shapes


def _pair(v, default):
    if v is None:
        return [default, default]
    return [v, v] if isinstance(v, int) else list(v)


def _window_out(layer, shape):
    """Output [C, H, W] of a conv/pool window, as model/arch.c computes it.

    "same" is TensorFlow SAME: out = ceil(in / stride), total padding
    max((out - 1) * stride + kernel - in, 0), the odd pixel after (bottom,
    right). It depends on the input size, so it is not a fixed padding."""
    k, s = _pair(layer.get("kernel"), 1), _pair(layer.get("stride"), 1)
    pad = layer.get("padding", "same")
    out = []
    for d in range(2):
        i = shape[d + 1]
        if pad == "same":
            out.append(-(-i // s[d]))
        else:
            total = 0 if pad == "valid" else 2 * pad[d]
            out.append((i + total - k[d]) // s[d] + 1)
    return out


def layer_shapes(arch):
    """{layer name: output shape [C, H, W]} with "cochleagram" the input."""
    shapes = {"cochleagram": list(arch["input"])}
    prev = "cochleagram"
    for layer in arch["layers"]:
        inp = shapes[layer.get("input", prev)]
        op = layer["op"]
        if op == "conv2d":
            out = [layer["out"]] + _window_out(layer, inp)
        elif op in ("maxpool", "avgpool"):
            out = [inp[0]] + _window_out(layer, inp)
        elif op == "flatten":
            out = [inp[0] * inp[1] * inp[2], 1, 1]
        elif op == "linear":
            out = [layer["out"], 1, 1]
        else:  # relu, batchnorm, lrn, dropout
            out = list(inp)
        shapes[layer["name"]] = out
        prev = layer["name"]
    return shapes


def expected_tensors(arch):
    """{tensor name: shape} that loading the architecture reads."""
    shapes, want, prev = layer_shapes(arch), {}, "cochleagram"
    for layer in arch["layers"]:
        inp = shapes[layer.get("input", prev)]
        prefix = layer.get("params", layer["name"]).replace("/", ".")
        op = layer["op"]
        if op == "conv2d":
            want[prefix + ".weight"] = [layer["out"], inp[0]] + _pair(layer["kernel"], 1)
        elif op == "linear":
            want[prefix + ".weight"] = [layer["out"], inp[0] * inp[1] * inp[2]]
        elif op == "batchnorm":
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                want[prefix + "." + suffix] = [inp[0]]
        if op in ("conv2d", "linear") and layer.get("bias", True):
            want[prefix + ".bias"] = [layer["out"]]
        prev = layer["name"]
    return want


def check_state_dict(arch, tensors):
    """Raises ValueError naming the first missing or misshapen tensor."""
    for name, shape in expected_tensors(arch).items():
        if name not in tensors:
            near = sorted(n for n in tensors if n.endswith("." + name))
            hint = ("; it is there with a prefix (use --strip-prefix): " + ", ".join(near[:4])
                    if near else "; --list prints the checkpoint's tensors")
            raise ValueError("state_dict has no '%s' (shape %s)%s" % (name, shape, hint))
        if list(tensors[name][0]) != shape:
            raise ValueError("'%s' has shape %s, the architecture needs %s"
                             % (name, list(tensors[name][0]), shape))

# ------------------------------------------------------------ architectures


def _layer(name, op, **kw):
    return dict({"name": name, "op": op}, **kw)


def _win(name, op, k, s, **kw):
    return _layer(name, op, kernel=k, stride=s, padding="same", **kw)


def _head(pre, src, names, kernel, widths, n_classes):
    """One task's layers after the trunk's layer src: conv-relu-conv-relu-
    avgpool-flatten-linear-relu-dropout-linear, named names (with prefix pre),
    convs of this kernel, widths = [conv, conv, linear]."""
    n = [pre + x for x in names]
    return [
        _win(n[0], "conv2d", kernel, [1, 1], out=widths[0], input=src), _layer(n[1], "relu"),
        _win(n[2], "conv2d", kernel, [1, 1], out=widths[1]), _layer(n[3], "relu"),
        _win(n[4], "avgpool", kernel, [2, 2], count_include_pad=True),
        _layer(n[5], "flatten", order="CHW"),
        _layer(n[6], "linear", out=widths[2]), _layer(n[7], "relu"),
        _layer(n[8], "dropout", p=0.5), _layer(n[9], "linear", out=n_classes),
    ]


def cochcnn9(widths, fc, tasks, input_shape, names=None):
    """CochCNN9 (Feather et al. 2023; `kell2018` in their PyTorch code): a
    trunk bn0-conv0-relu0-maxpool0-bn1-conv1-relu1-maxpool1-bn2-conv2-relu2,
    then per task conv3-relu3-conv4-relu4-avgpool-flatten-fullyconnected-
    relufc-dropout-final. One task: no branch prefix. `names` maps our layer
    names to other state_dict prefixes (the layer's "params")."""
    names = names or {}
    trunk = [
        _layer("bn0", "batchnorm", eps=1e-5),
        _win("conv0", "conv2d", [7, 14], [3, 3], out=widths[0]),
        _layer("relu0", "relu"), _win("maxpool0", "maxpool", [2, 5], [2, 2]),
        _layer("bn1", "batchnorm", eps=1e-5),
        _win("conv1", "conv2d", [4, 8], [2, 2], out=widths[1]),
        _layer("relu1", "relu"), _win("maxpool1", "maxpool", [2, 5], [2, 2]),
        _layer("bn2", "batchnorm", eps=1e-5),
        _win("conv2", "conv2d", [2, 5], [1, 1], out=widths[2]), _layer("relu2", "relu"),
    ]
    layers, outputs = trunk, {}
    head = ["conv3", "relu3", "conv4", "relu4", "avgpool", "flatten", "fullyconnected",
            "relufc", "dropout", "final"]
    for task, n_classes in tasks.items():
        pre = task + "/" if len(tasks) > 1 else ""
        layers = layers + _head(pre, "relu2", head, [2, 5], widths[3:] + [fc], n_classes)
        outputs[task] = pre + "final"
    for layer in layers:
        if layer["name"] in names:
            layer["params"] = names[layer["name"]]
    return {"name": "cochcnn9", "input": list(input_shape), "layers": layers, "outputs": outputs}


# model_metamers_pytorch's AuditoryCNN names the batchnorms batchnorm0..2 and
# the last layer `classification`; every other layer has our name.
FEATHER_NAMES = {"bn0": "batchnorm0", "bn1": "batchnorm1", "bn2": "batchnorm2",
                 "final": "classification"}


KELL2018_WIDTHS = [96, 256, 512, 1024, 512, 4096]


def kell2018(tasks, input_shape, widths=KELL2018_WIDTHS, lrn=(2, 1.0, 1e-3 / 5, 0.75)):
    """Kell et al. 2018's branched network: conv1 96 [9x9]/3, relu, LRN, max
    pool [3x3]/2, conv2 256 [5x5]/2, relu, LRN, pool, conv3 512 [3x3], relu;
    per task conv4 1024 [3x3], conv5 512 [3x3], avg pool [3x3]/2, fc6 4096,
    fc_top (`widths` lists these six sizes). `lrn` is TensorFlow's
    (depth_radius, bias, alpha, beta); from torch.nn.LocalResponseNorm(size,
    alpha, beta, k): (size // 2, k, alpha / size, beta), odd sizes only."""
    r, bias, alpha, beta = lrn
    norm = dict(depth_radius=r, bias=bias, alpha=alpha, beta=beta)
    layers = [
        _win("conv1", "conv2d", [9, 9], [3, 3], out=widths[0]), _layer("relu1", "relu"),
        _layer("norm1", "lrn", **norm), _win("pool1", "maxpool", [3, 3], [2, 2]),
        _win("conv2", "conv2d", [5, 5], [2, 2], out=widths[1]), _layer("relu2", "relu"),
        _layer("norm2", "lrn", **norm), _win("pool2", "maxpool", [3, 3], [2, 2]),
        _win("conv3", "conv2d", [3, 3], [1, 1], out=widths[2]), _layer("relu3", "relu"),
    ]
    head = ["conv4", "relu4", "conv5", "relu5", "pool5", "flatten", "fc6", "relu6", "dropout",
            "fc_top"]
    outputs = {}
    for task, n_classes in tasks.items():
        layers += _head(task + "/", "relu3", head, [3, 3], widths[3:], n_classes)
        outputs[task] = task + "/fc_top"
    return {"name": "kell2018", "input": list(input_shape), "layers": layers, "outputs": outputs}

# ------------------------------------------------------------ safetensors


def _f32_bytes(values):
    a = array.array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: {name: (shape, little-endian bytes, dtype)}; metadata:
    {key: str}. The header is padded with spaces to 8 bytes, as the
    safetensors library writes it."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, (shape, data, dtype) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """({name: (shape, [floats])} for F32 tensors, metadata)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        if e["dtype"] == "F32":
            b, end = e["data_offsets"]
            a = array.array("f", data[b:end])
            if sys.byteorder == "big":
                a.byteswap()
            out[name] = (e["shape"], a.tolist())
    return out, meta


def export(path, arch, tensors, front_end, classes, extra=None):
    """Checks and writes a model file. tensors: {name: (shape, bytes, dtype)}
    (other entries of a state_dict, e.g. num_batches_tracked, are kept: the
    loader ignores them); classes: {task: [labels]}."""
    check_state_dict(arch, tensors)
    fe = FRONT_ENDS.get(front_end, front_end)
    meta = {"architecture": json.dumps(arch), "front_end": json.dumps(fe)}
    for task, labels in classes.items():
        meta["classes." + task] = json.dumps(labels)
    meta.update(extra or {})
    write_safetensors(path, tensors, meta)

# ------------------------------------------------------------ reference forward


def _conv_or_pool(layer, x, shape, weight=None, bias=None):
    """Pure-Python conv2d / maxpool / avgpool with the layer's padding
    (PyTorch semantics: cross-correlation, weight [out, in, kh, kw]; average
    pooling counts padded zeros)."""
    c, h, w = shape
    k, s = _pair(layer.get("kernel"), 1), _pair(layer.get("stride"), 1)
    oh, ow = _window_out(layer, shape)
    pad = layer.get("padding", "same")
    if pad == "same":
        ph = max((oh - 1) * s[0] + k[0] - h, 0) // 2
        pw = max((ow - 1) * s[1] + k[1] - w, 0) // 2
    else:
        ph, pw = (0, 0) if pad == "valid" else pad
    op, outs = layer["op"], []
    n_out = layer["out"] if op == "conv2d" else c
    for o in range(n_out):
        for y in range(oh):
            for z in range(ow):
                acc = bias[o] if op == "conv2d" and bias else 0.0
                acc = -math.inf if op == "maxpool" else acc
                for ci in ([o] if op != "conv2d" else range(c)):
                    for dy in range(k[0]):
                        iy = y * s[0] - ph + dy
                        for dz in range(k[1]):
                            iz = z * s[1] - pw + dz
                            inside = 0 <= iy < h and 0 <= iz < w
                            v = x[(ci * h + iy) * w + iz] if inside else 0.0
                            if op == "conv2d":
                                acc += weight[((o * c + ci) * k[0] + dy) * k[1] + dz] * v
                            elif op == "maxpool":
                                acc = max(acc, v) if inside else acc
                            else:
                                acc += v / (k[0] * k[1])
                outs.append(acc)
    return outs


def _lrn(layer, x, c, hw):
    """TensorFlow's local response normalization across channels."""
    r, bias = layer.get("depth_radius", 5), layer.get("bias", 1.0)
    alpha, beta = layer.get("alpha", 1.0), layer.get("beta", 0.5)
    out = []
    for i, v in enumerate(x):
        ch, pos = divmod(i, hw)
        window = range(max(ch - r, 0), min(ch + r, c - 1) + 1)
        out.append(v * (bias + alpha * sum(x[k * hw + pos] ** 2 for k in window)) ** -beta)
    return out


def forward(arch, params, x):
    """{stage: activations} of every stage, from the cochleagram x."""
    shapes, acts, prev = layer_shapes(arch), {"cochleagram": x}, "cochleagram"
    for layer in arch["layers"]:
        src = layer.get("input", prev)
        inp, shape = acts[src], shapes[src]
        op, pre = layer["op"], layer.get("params", layer["name"]).replace("/", ".")
        p = {k[len(pre) + 1:]: v[1] for k, v in params.items() if k.startswith(pre + ".")}
        hw = shape[1] * shape[2]
        if op in ("conv2d", "maxpool", "avgpool"):
            out = _conv_or_pool(layer, inp, shape, p.get("weight"), p.get("bias"))
        elif op == "relu":
            out = [max(v, 0.0) for v in inp]
        elif op == "batchnorm":
            eps = layer.get("eps", 1e-5)
            out = [(v - p["running_mean"][i // hw]) / math.sqrt(p["running_var"][i // hw] + eps)
                   * p["weight"][i // hw] + p["bias"][i // hw] for i, v in enumerate(inp)]
        elif op == "linear":
            n, bias = len(inp), p.get("bias", [0.0] * layer["out"])
            out = [sum(p["weight"][o * n + i] * inp[i] for i in range(n)) + bias[o]
                   for o in range(layer["out"])]
        elif op == "lrn":
            out = _lrn(layer, inp, shape[0], hw)
        else:  # flatten (C, H, W order: the memory order), dropout (inference)
            out = list(inp)
        acts[layer["name"]] = out
        prev = layer["name"]
    return acts


def verify(model_path, represent_path, tol=1e-4):
    """Compares `metamers represent --stages all` output with the reference
    forward pass from its own cochleagram; returns the worst relative error."""
    params, meta = read_safetensors(model_path)
    arch = json.loads(meta["architecture"])
    rep, _ = read_safetensors(represent_path)
    acts = forward(arch, params, rep["cochleagram"][1])
    worst = 0.0
    for stage, values in acts.items():
        if stage not in rep:
            raise ValueError("%s has no stage '%s' (run represent with --stages all)"
                             % (represent_path, stage))
        got = rep[stage][1]
        num = sum((a - b) ** 2 for a, b in zip(got, values))
        den = sum(b * b for b in values) or 1.0
        err = math.sqrt(num / den)
        worst = max(worst, err)
        print("%-22s rel. L2 error %.2e%s" % (stage, err, "" if err < tol else "  TOO LARGE"))
    return worst

# ------------------------------------------------------------ self-test


def selftest(path, which="cochcnn9"):
    """A small network with word and genre branches on the `default` front
    end and PyTorch-default random weights from plain Python: CochCNN9's
    layout with Feather's tensor names for the batchnorms (through "params"),
    batchnorm statistics away from their defaults and PyTorch's
    num_batches_tracked buffers; or Kell 2018's layout (LRN, 9x9 and 3x3
    kernels)."""
    rng = random.Random(2023)
    words, genres = ["cat", "dog", "house", "water", "seven"], ["rock", "jazz", "waltz"]
    tasks, shape = {"word": len(words), "genre": len(genres)}, [1] + FRONT_END_SHAPES["default"]
    if which == "kell2018":
        # A strong normalization, so the test sees LRN at work.
        arch = kell2018(tasks, shape, [4, 6, 8, 8, 6, 16], lrn=(1, 2.0, 0.3, 0.75))
    else:
        arch = cochcnn9([4, 6, 8, 8, 6], 16, tasks, shape, FEATHER_NAMES)
    tensors = {}
    for name, shape in expected_tensors(arch).items():
        n = 1
        for d in shape:
            n *= d
        if name.endswith("running_var"):
            values = [rng.uniform(0.5, 2.0) for _ in range(n)]
        elif len(shape) > 1:  # conv and linear weights
            bound = 1 / math.sqrt(n // shape[0])
            values = [rng.uniform(-bound, bound) for _ in range(n)]
        elif name.endswith(("running_mean", "bias")):
            values = [rng.uniform(-0.5, 0.5) for _ in range(n)]
        else:  # batchnorm weight
            values = [rng.uniform(0.5, 1.5) for _ in range(n)]
        tensors[name] = (shape, _f32_bytes(values), "F32")
        if name.endswith("running_var"):
            tensors[name[:-len("running_var")] + "num_batches_tracked"] = (
                [], struct.pack("<q", 100), "I64")
    export(path, arch, tensors, "default", {"word": words, "genre": genres},
           {"training.recipe": "export_pytorch.py --selftest (random weights)"})
    print("%s: %d tensors, stages %s" % (path, len(tensors),
                                         ", ".join(l["name"] for l in arch["layers"])))

# ------------------------------------------------------------ PyTorch


def load_checkpoint(path, state_key, strip_prefix):
    """{name: (shape, float32 bytes, "F32")} from a torch checkpoint: a
    state_dict, or a dict holding one under state_key ("model",
    "state_dict"); only tensors whose names start with strip_prefix, without
    it."""
    import torch  # the only use of torch

    try:  # robustness-library checkpoints are pickled with dill
        import dill
        obj = torch.load(path, map_location="cpu", pickle_module=dill, weights_only=False)
    except ImportError:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    for key in ([state_key] if state_key else ["state_dict", "model"]):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    out = {}
    for name, t in obj.items():
        if not hasattr(t, "detach") or not name.startswith(strip_prefix or ""):
            continue
        t = t.detach().cpu()
        if not t.is_floating_point():
            continue  # num_batches_tracked and other integer buffers
        flat = t.to(torch.float32).contiguous().reshape(-1).tolist()
        out[name[len(strip_prefix or ""):]] = (list(t.shape), _f32_bytes(flat), "F32")
    return out


def _read_labels(spec):
    task, _, path = spec.partition("=")
    with open(path) as f:
        labels = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    return task, labels


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", metavar="OUT", help="write a small random network, no torch")
    ap.add_argument("--selftest-arch", default="cochcnn9", choices=["cochcnn9", "kell2018"],
                    help="the layout of the --selftest network")
    ap.add_argument("--verify", nargs=2, metavar=("MODEL", "REPRESENT_OUT"),
                    help="compare `metamers represent --stages all` with a pure-Python forward")
    ap.add_argument("--checkpoint", help="torch checkpoint (state_dict or a dict holding one)")
    ap.add_argument("--state-key", help="key of the state_dict in the checkpoint")
    ap.add_argument("--strip-prefix", default="", help="e.g. module.model.")
    ap.add_argument("--list", action="store_true",
                    help="print the checkpoint's float tensors (after --strip-prefix) and stop")
    ap.add_argument("--arch", help="cochcnn9, cochcnn9-feather, kell2018 or FILE.json")
    ap.add_argument("--front-end", default="cochleagram_1",
                    help="cochleagram_1, default, or a FILE.json front_end object")
    ap.add_argument("--classes", action="append", default=[], metavar="TASK=FILE",
                    help="labels of a task, one per line (repeat per task)")
    ap.add_argument("--out", help="model file to write")
    a = ap.parse_args(argv)
    if a.selftest:
        return selftest(a.selftest, a.selftest_arch) or 0
    if a.verify:
        return 0 if verify(*a.verify) < 1e-4 else 1
    if a.checkpoint and a.list:
        tensors = load_checkpoint(a.checkpoint, a.state_key, a.strip_prefix)
        for name, (shape, _, _) in tensors.items():
            print(name, shape)
        return 0
    if not (a.checkpoint and a.arch and a.out and a.classes):
        ap.error("--checkpoint, --arch, --classes and --out are needed (or --selftest)")
    classes = dict(_read_labels(c) for c in a.classes)
    fe = a.front_end
    if fe not in FRONT_ENDS:
        with open(fe) as f:
            fe = json.load(f)
    shape = [1] + FRONT_END_SHAPES[a.front_end] if a.front_end in FRONT_END_SHAPES else None
    tasks = {t: len(l) for t, l in classes.items()}
    if a.arch in ("cochcnn9", "cochcnn9-feather", "kell2018") and not shape:
        ap.error("give the built-in architectures a preset front end, or write the JSON")
    if a.arch == "cochcnn9":
        arch = cochcnn9([96, 256, 512, 1024, 512], 4096, tasks, shape)
    elif a.arch == "cochcnn9-feather":
        arch = cochcnn9([96, 256, 512, 1024, 512], 4096, tasks, shape, FEATHER_NAMES)
    elif a.arch == "kell2018":
        arch = kell2018(tasks, shape)
    else:
        with open(a.arch) as f:
            arch = json.load(f)
    export(a.out, arch, load_checkpoint(a.checkpoint, a.state_key, a.strip_prefix), fe, classes)
    print("wrote %s; check it with: metamers stages --model %s" % (a.out, a.out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, OSError, KeyError) as e:
        sys.exit("export_pytorch.py: %s" % e)
