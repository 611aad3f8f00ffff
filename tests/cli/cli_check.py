#!/usr/bin/env python3
"""Checks of the rodimus command-line tool (examples/rodimus_cli.cpp), one mode per ctest entry.

  cli_check.py info     BIN MODEL_DIR
  cli_check.py logits   BIN CASE_DIR WORK_DIR [--dtype f32|bf16]
  cli_check.py generate BIN CASE_DIR WORK_DIR
  cli_check.py help     BIN [ARGS...]
  cli_check.py error    BIN CODE PATTERN [ARGS...]
  cli_check.py corrupt  BIN MODEL_DIR WORK_DIR

Only the standard library: safetensors files are read with struct.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

TIMEOUT_S = 120


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(bin_path, args, env_extra=None):
    env = dict(os.environ)
    env.setdefault("OMP_PROC_BIND", "false")
    # One thread per process: ctest -j runs several at once on small machines, and the tool's
    # behaviour, not the kernels' threading (tested elsewhere), is under test here.
    env.setdefault("OMP_NUM_THREADS", "1")
    if env_extra:
        env.update(env_extra)
    cmd = [bin_path, *args]
    print("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        fail(f"timed out after {TIMEOUT_S} s")
    if p.returncode < 0:
        fail(f"killed by signal {-p.returncode}\nstderr:\n{p.stderr}")
    return p


def read_safetensors(path):
    """name -> (dtype, shape, raw bytes)"""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], body[b:end])
    return out


def values(tensor):
    dtype, shape, raw = tensor
    fmt = {"F32": "f", "I64": "q"}[dtype]
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw))


def parse_kv(text):
    kv = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            fail(f"output line is not 'key: value': {line!r}")
        kv[key] = value
    return kv


def golden_row0(case_dir):
    exp = read_safetensors(os.path.join(case_dir, "expected.safetensors"))
    _, (b, t), _ = exp["input_ids"]
    ids = values(exp["input_ids"])[:t]
    _, (_, _, v), _ = exp["logits"]
    logits = values(exp["logits"])[: t * v]  # row 0: [T, V]
    return ids, logits, t, v


def check_info(bin_path, model_dir):
    p = run(bin_path, ["info", "--model", model_dir])
    if p.returncode != 0:
        fail(f"exit {p.returncode}: {p.stderr}")
    kv = parse_kv(p.stdout)
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    expected_params = sum(math.prod(t[1]) for t in tensors.values())
    if int(kv["parameters"]) != expected_params:
        fail(f"parameters {kv['parameters']} != {expected_params} (sum of tensor sizes)")
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    for key in ("block_type", "d_model", "n_layer", "vocab_size"):
        if kv[key] != str(cfg[key]):
            fail(f"{key} {kv[key]} != {cfg[key]} from config.json")
    dtypes = ",".join(sorted({t[0] for t in tensors.values()}))
    if kv["weight_dtype_on_disk"] != dtypes:
        fail(f"weight_dtype_on_disk {kv['weight_dtype_on_disk']} != {dtypes}")
    if int(kv["checkpoint_tensors"]) != len(tensors):
        fail(f"checkpoint_tensors {kv['checkpoint_tensors']} != {len(tensors)}")
    if int(kv["state_bytes_per_sequence"]) <= 0 or not kv["backend"]:
        fail("state_bytes_per_sequence or backend missing")
    if (cfg["block_type"] == "rodimus_plus") != ("num_heads" in kv):
        fail("attention settings printed for the wrong block type")
    print(f"ok: parameters {expected_params}, state {kv['state_bytes_per_sequence']} bytes")


def check_logits(bin_path, case_dir, work_dir, dtype="f32"):
    ids, expected, t, v = golden_row0(case_dir)
    os.makedirs(work_dir, exist_ok=True)
    out = os.path.join(work_dir, f"logits_{dtype}.safetensors")
    if os.path.exists(out):
        os.remove(out)
    p = run(bin_path, ["logits", "--model", case_dir, "--ids", ",".join(map(str, ids)),
                       "--out", out, "--dtype", dtype])
    if p.returncode != 0:
        fail(f"exit {p.returncode}: {p.stderr}")
    kv = parse_kv(p.stdout)
    got_file = read_safetensors(out)
    if got_file["logits"][0] != "F32" or got_file["logits"][1] != [t, v]:
        fail(f"logits tensor is {got_file['logits'][:2]}, expected F32 {[t, v]}")
    if got_file["input_ids"][0] != "I64" or values(got_file["input_ids"]) != ids:
        fail("input_ids tensor differs from --ids")
    got = values(got_file["logits"])
    scale = max(abs(x) for x in expected)
    tol = (1e-4 if dtype == "f32" else 3e-2) * scale
    err = max(abs(a - b) for a, b in zip(got, expected))
    if not err <= tol:
        fail(f"max |logits - expected| = {err:.3g} > {tol:.3g}")
    # the summary describes the same logits
    if (kv["T"], kv["V"]) != (str(t), str(v)):
        fail(f"T, V printed as {kv['T']}, {kv['V']}")
    last = got[(t - 1) * v:]
    top = [int(item.split(":")[0]) for item in kv["top5_last"].split()]
    want = sorted(range(v), key=lambda i: (-last[i], i))[:5]
    if top != want:
        fail(f"top5_last {top} != {want}")
    if abs(float(kv["max_abs_logit"]) - max(abs(x) for x in got)) > 1e-5 * scale + 1e-6:
        fail(f"max_abs_logit {kv['max_abs_logit']} does not match the file")
    if abs(float(kv["logit_sum"]) - math.fsum(got)) > 1e-5 * scale * len(got) + 1e-6:
        fail(f"logit_sum {kv['logit_sum']} does not match the file")
    print(f"ok: {dtype} logits [{t}, {v}] within {err:.3g} of expected (tolerance {tol:.3g})")


def check_generate(bin_path, case_dir, work_dir):
    with open(os.path.join(case_dir, "expected.json")) as f:
        greedy = json.load(f)["greedy_continuation_of_row0"]
    if not greedy:
        fail("expected.json has no greedy continuation")
    ids, _, _, _ = golden_row0(case_dir)
    prompt = ",".join(map(str, ids))

    p = run(bin_path, ["generate", "--model", case_dir, "--ids", prompt, "-n", str(len(greedy))])
    if p.returncode != 0:
        fail(f"exit {p.returncode}: {p.stderr}")
    if p.stdout != ",".join(map(str, greedy)) + "\n":
        fail(f"generated {p.stdout.strip()!r}, expected {greedy}")
    if "prefill" not in p.stderr or "tokens/s" not in p.stderr:
        fail(f"no timing line on stderr: {p.stderr!r}")

    # -n 0 generates nothing
    p = run(bin_path, ["generate", "--model", case_dir, "--ids", prompt, "-n", "0"])
    if p.returncode != 0 or p.stdout != "\n":
        fail(f"-n 0: exit {p.returncode}, stdout {p.stdout!r}")

    # --stop-at-eos: the same weights with eos = the third greedy token stop after it
    eos_dir = os.path.join(work_dir, "eos_model")
    shutil.rmtree(eos_dir, ignore_errors=True)
    os.makedirs(eos_dir)
    with open(os.path.join(case_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg["eos_token_id"] = [greedy[2], greedy[2]]
    with open(os.path.join(eos_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    os.symlink(os.path.abspath(os.path.join(case_dir, "model.safetensors")),
               os.path.join(eos_dir, "model.safetensors"))
    first = greedy.index(greedy[2]) + 1
    args = ["generate", "--model", eos_dir, "--ids", prompt, "-n", str(len(greedy))]
    p = run(bin_path, args + ["--stop-at-eos"])
    if p.returncode != 0 or p.stdout != ",".join(map(str, greedy[:first])) + "\n":
        fail(f"--stop-at-eos: exit {p.returncode}, stdout {p.stdout!r}, expected {greedy[:first]}")
    p = run(bin_path, args)
    if p.returncode != 0 or p.stdout != ",".join(map(str, greedy)) + "\n":
        fail(f"without --stop-at-eos: exit {p.returncode}, stdout {p.stdout!r}")
    print(f"ok: greedy continuation {greedy}")


def check_help(bin_path, args):
    p = run(bin_path, args)
    if p.returncode != 0:
        fail(f"exit {p.returncode}: {p.stderr}")
    if not p.stdout.startswith("usage: rodimus"):
        fail(f"no usage on stdout: {p.stdout[:200]!r}")
    print("ok")


def check_error(bin_path, code, pattern, args):
    p = run(bin_path, args)
    print(p.stderr, end="")
    if p.returncode != code:
        fail(f"exit {p.returncode}, expected {code}")
    first = p.stderr.splitlines()[0] if p.stderr else ""
    if not first.startswith("rodimus: error: ") or pattern not in first:
        fail(f"first stderr line {first!r} lacks 'rodimus: error: ' and {pattern!r}")
    if (code == 2) != ("usage: rodimus" in p.stderr):
        fail("usage text wrongly present or absent")
    if p.stdout:
        fail(f"unexpected stdout {p.stdout!r}")
    print("ok")


def check_corrupt(bin_path, model_dir, work_dir):
    bad = os.path.join(work_dir, "corrupt_model")
    shutil.rmtree(bad, ignore_errors=True)
    os.makedirs(bad)
    shutil.copy(os.path.join(model_dir, "config.json"), bad)
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        data = f.read()
    weights = os.path.join(bad, "model.safetensors")
    cases = [
        (data[: len(data) // 2], "truncated"),  # data section cut short
        (data[:100], "header"),                  # header cut short
        (b"", "empty"),
    ]
    for blob, word in cases:
        with open(weights, "wb") as f:
            f.write(blob)
        for cmd in (["info"], ["logits", "--ids", "1,2"], ["generate", "--ids", "1", "-n", "2"]):
            p = run(bin_path, [cmd[0], "--model", bad, *cmd[1:]])
            print(p.stderr, end="")
            first = p.stderr.splitlines()[0] if p.stderr else ""
            if p.returncode != 1 or not first.startswith("rodimus: error: ") or p.stdout:
                fail(f"{len(blob)}-byte weights: exit {p.returncode}, stderr {p.stderr!r}")
            if "model.safetensors" not in first or word not in first:
                fail(f"message {first!r} names neither the file nor '{word}'")
    os.remove(weights)
    p = run(bin_path, ["info", "--model", bad])
    if p.returncode != 1 or "model.safetensors" not in p.stderr:
        fail(f"no weights: exit {p.returncode}, stderr {p.stderr!r}")
    print("ok")


def main(argv):
    if len(argv) < 3:
        fail(__doc__)
    mode, bin_path, rest = argv[1], argv[2], argv[3:]
    if mode == "info":
        check_info(bin_path, *rest)
    elif mode == "logits":
        dtype = "f32"
        if len(rest) == 4 and rest[2] == "--dtype":
            dtype = rest[3]
            rest = rest[:2]
        check_logits(bin_path, *rest, dtype=dtype)
    elif mode == "generate":
        check_generate(bin_path, *rest)
    elif mode == "help":
        check_help(bin_path, rest)
    elif mode == "error":
        check_error(bin_path, int(rest[0]), rest[1], rest[2:])
    elif mode == "corrupt":
        check_corrupt(bin_path, *rest)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
