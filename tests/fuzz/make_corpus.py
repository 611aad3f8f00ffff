#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora: tests/fuzz/corpus/{safetensors,config}/ (run from anywhere)."""
import json
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "data", "golden")
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape); data is random bytes."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    rnd = random.Random(1234)
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        blobs.append(bytes(rnd.getrandbits(8) for _ in range(n)))
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def main():
    st = os.path.join(HERE, "corpus", "safetensors")
    cf = os.path.join(HERE, "corpus", "config")
    os.makedirs(st, exist_ok=True)
    os.makedirs(cf, exist_ok=True)

    seeds = {
        "tiny_f32": safetensors([("w", "F32", [2, 3])]),
        "mixed_dtypes": safetensors(
            [("a.f16", "F16", [3, 2]), ("b.bf16", "BF16", [4]), ("c.i64", "I64", [2]), ("d.u8", "U8", [5]),
             ("e.f64", "F64", [1]), ("f.bool", "BOOL", [3])],
            {"format": "pt"}),
        "scalar_and_empty": safetensors([("s", "F32", []), ("z", "F16", [0, 7]), ("t", "BF16", [1, 1, 1])]),
        "empty_header": safetensors([]),
        "metadata_only": safetensors([], {"format": "pt", "total_size": "0"}),
    }
    # the names of the golden Rodimus+ checkpoint, with tiny shapes
    path = os.path.join(GOLDEN, "tiny_rodimus_plus", "model.safetensors")
    if os.path.exists(path):
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            names = [k for k in json.loads(f.read(n)) if k != "__metadata__"]
        seeds["golden_names"] = safetensors([(k, "BF16", [2]) for k in sorted(names)], {"format": "pt"})
        with open(os.path.join(GOLDEN, "tiny_rodimus", "expected.safetensors"), "rb") as f:
            seeds["golden_expected"] = f.read()
    for name, data in seeds.items():
        with open(os.path.join(st, name + ".safetensors"), "wb") as f:
            f.write(data)

    for case in ("tiny_rodimus", "tiny_rodimus_plus", "strong_decay_rodimus"):
        src = os.path.join(GOLDEN, case, "config.json")
        if os.path.exists(src):
            shutil.copy(src, os.path.join(cf, case + ".json"))
    variants = {
        "empty": {},
        "minimal_plus": {"block_type": "rodimus_plus", "d_model": 256, "attn_cfg": None},
        "plus_full": {"model_type": "rodimus", "block_type": "rodimus_plus", "d_model": 256, "n_layer": 3,
                      "vocab_size": 1000, "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": 0,
                      "tie_word_embeddings": True, "use_scale_embedding": True, "use_norm_embedding": True,
                      "mixer_cfg": {"d_conv": 3, "expand_ratio": 1.5, "mem_size": 32, "input_gate_low_rank": 24,
                                    "normalize_epsilon": 1e-10},
                      "attn_cfg": {"num_heads": 4, "num_heads_k": 1, "num_heads_v": 2, "window_size": 64,
                                   "rotary_emb_dim": 32, "rotary_emb_base": 500000.0, "softmax_scale": 0.25,
                                   "ffn_expand_ratio": 2.5}},
        "plus_norm_scale": {"block_type": "rodimus_plus", "d_model": 256, "attn_cfg": {"softmax_scale": "norm"}},
        "plus_interleaved": {"block_type": "rodimus_plus", "d_model": 256,
                             "attn_cfg": {"rotary_emb_interleaved": True}},
        "null_ids": {"d_model": 128, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None},
    }
    for name, cfg in variants.items():
        with open(os.path.join(cf, name + ".json"), "w") as f:
            json.dump(cfg, f, indent=2)
    # regression: nlohmann throws out_of_range (not parse_error) for a number that overflows a double
    with open(os.path.join(cf, "number_overflow.json"), "w") as f:
        f.write('{"d_model": 1e400, "vocab_size": 7777777777777777777777777}')


if __name__ == "__main__":
    main()
