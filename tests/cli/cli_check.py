#!/usr/bin/env python3
"""Checks of the rodimus command-line tool (examples/rodimus_cli.cpp), one mode per ctest entry.

  cli_check.py info     BIN MODEL_DIR
  cli_check.py logits   BIN CASE_DIR WORK_DIR [--dtype f32|bf16]
  cli_check.py generate BIN CASE_DIR WORK_DIR
  cli_check.py help     BIN [ARGS...]
  cli_check.py error    BIN CODE PATTERN [ARGS...]
  cli_check.py corrupt  BIN MODEL_DIR WORK_DIR
  cli_check.py text     BIN TEXT_MODEL_DIR TOKENIZER_JSON WORK_DIR
  cli_check.py train    BIN TRAIN_DATA_DIR WORK_DIR
  cli_check.py eval     BIN TEXT_MODEL_DIR WORK_DIR
  cli_check.py trainloop BIN TOKENIZER_JSON GOLDEN_CONFIG WORK_DIR

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


def run(bin_path, args, env_extra=None, stdin=None):
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
        p = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="strict",
                           timeout=TIMEOUT_S, env=env, input=stdin)
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


def ok_run(bin_path, args, stdin=None):
    p = run(bin_path, args, stdin=stdin)
    if p.returncode != 0:
        fail(f"exit {p.returncode}: {p.stderr}")
    return p


def tokenize(bin_path, source, text):
    out = ok_run(bin_path, ["tokenize", *source, "--text", text]).stdout
    if not out.endswith("\n") or out.count("\n") != 1:
        fail(f"tokenize output is not one line: {out!r}")
    return [int(x) for x in out.strip().split(",")] if out.strip() else []


def detokenize(bin_path, source, ids):
    out = ok_run(bin_path, ["detokenize", *source, "--ids", ",".join(map(str, ids))]).stdout
    if not out.endswith("\n"):
        fail(f"detokenize output lacks its final newline: {out!r}")
    return out[:-1]


def summary_fields(stderr):
    """prompt / generated token counts and the finish reason of a generate summary line"""
    import re
    m = re.search(r"prompt (\d+) tokens, generated (\d+) tokens \(finish: (\w+)\), prefill (\S+) "
                  r"tokens/s, decode (\S+) tokens/s, state (\d+) bytes \(([\d.]+) MiB\)", stderr)
    if not m:
        fail(f"no summary line on stderr: {stderr!r}")
    if int(m.group(6)) <= 0 or abs(int(m.group(6)) / 2**20 - float(m.group(7))) > 0.006:
        fail(f"state bytes and MiB disagree: {m.group(0)!r}")
    return int(m.group(1)), int(m.group(2)), m.group(3)


def check_text(bin_path, model_dir, tokenizer, work_dir):
    model = ["--model", model_dir]
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    # tokenize / detokenize round trip, through the model dir and the tokenizer file alike;
    # special tokens in the text, multi-byte characters, spaces
    text = "<role>HUMAN</role>Café crème, 3 €  été\tWORD!<|endoftext|>"
    ids = tokenize(bin_path, model, text)
    if tokenize(bin_path, ["--tokenizer", tokenizer], text) != ids:
        fail("--model and --tokenizer give different ids")
    if len(ids) < 10 or any(i < 0 or i >= cfg["vocab_size"] for i in ids):
        fail(f"implausible ids {ids}")
    if detokenize(bin_path, model, ids) != text:
        fail(f"detokenize(tokenize(text)) != text")
    if detokenize(bin_path, ["--tokenizer", tokenizer], ids) != text:
        fail("round trip through --tokenizer differs")

    # generate --prompt (greedy) writes the text of the ids generate --ids produces
    prompt = "Once upon a time, a café"
    prompt_ids = tokenize(bin_path, model, prompt)
    n = 24
    p = ok_run(bin_path, ["generate", *model, "--prompt", prompt, "-n", str(n), "--ignore-eos"])
    if not p.stdout.endswith("\n"):
        fail("generate --prompt output does not end with a newline")
    gen_text = p.stdout[:-1]
    got_prompt, got_n, finish = summary_fields(p.stderr)
    if (got_prompt, got_n, finish) != (len(prompt_ids), n, "length"):
        fail(f"summary says prompt {got_prompt}, generated {got_n}, {finish}")
    ids_out = ok_run(bin_path, ["generate", *model, "--ids", ",".join(map(str, prompt_ids)),
                                "-n", str(n)]).stdout.strip()
    greedy = [int(x) for x in ids_out.split(",")]
    if detokenize(bin_path, model, greedy) != gen_text:
        fail(f"--prompt text {gen_text!r} != text of the --ids tokens {greedy}")

    # EOS from the config ends the text (the same weights, eos = the 6th greedy token)
    eos_dir = os.path.join(work_dir, "eos_model")
    shutil.rmtree(eos_dir, ignore_errors=True)
    os.makedirs(eos_dir)
    eos = greedy[5]
    cfg_eos = dict(cfg, eos_token_id=eos)
    with open(os.path.join(eos_dir, "config.json"), "w") as f:
        json.dump(cfg_eos, f)
    for name in ("model.safetensors", "tokenizer.json"):
        os.symlink(os.path.abspath(os.path.join(model_dir, name)), os.path.join(eos_dir, name))
    first = greedy.index(eos)
    p = ok_run(bin_path, ["generate", "--model", eos_dir, "--prompt", prompt, "-n", str(n)])
    if p.stdout[:-1] != (detokenize(bin_path, model, greedy[:first]) if first else ""):
        fail(f"with eos {eos}: {p.stdout!r}, expected the text of {greedy[:first]}")
    if summary_fields(p.stderr)[1:] != (first + 1, "eos"):
        fail(f"eos summary wrong: {p.stderr!r}")

    # a stop string spanning two tokens: the text stops before it
    pieces = [""] + [detokenize(bin_path, model, greedy[:k]) for k in range(1, len(greedy) + 1)]
    stop = None
    for k in range(2, len(greedy) - 1):
        a, b = pieces[k], pieces[k + 1]
        if len(pieces[k - 1]) < len(a) < len(b) and a.startswith(pieces[k - 1]) and b.startswith(a):
            stop = gen_text[len(a) - 1:len(a) + 1]
            break
    if stop is None or len(stop) != 2:
        fail(f"no two tokens to put a stop string across in {gen_text!r}")
    p = ok_run(bin_path, ["generate", *model, "--prompt", prompt, "-n", str(n), "--ignore-eos",
                          "--stop", "zzzz-not-there", "--stop", stop])
    if p.stdout[:-1] != gen_text[:gen_text.find(stop)]:
        fail(f"--stop {stop!r}: {p.stdout!r}, expected {gen_text[:gen_text.find(stop)]!r}")
    if summary_fields(p.stderr)[2] != "stop_string":
        fail(f"stop summary wrong: {p.stderr!r}")

    # sampling: a seed reproduces the text, another seed changes it
    sample = ["generate", *model, "--prompt", prompt, "-n", "40", "--ignore-eos", "--temperature",
              "1.5", "--top-k", "200", "--top-p", "0.95", "--min-p", "0.01",
              "--repetition-penalty", "1.1"]
    a = ok_run(bin_path, sample + ["--seed", "7"]).stdout
    b = ok_run(bin_path, sample + ["--seed=7"]).stdout
    c = ok_run(bin_path, sample + ["--seed", "8"]).stdout
    if a != b or a == c:
        fail(f"seeded sampling: seed 7 gave {a!r} and {b!r}, seed 8 gave {c!r}")

    # chat: the first answer is generate on the formatted first turn; later turns read only
    # their own tokens (the state carries the rest)
    system = "Be brief."
    turns = ["Hello there", "", "What is a café?", "Tell me more"]
    m = 10
    p = ok_run(bin_path, ["chat", *model, "--system", system, "-n", str(m), "--ignore-eos"],
               stdin="\n".join(turns) + "\n")
    lines = [l for l in p.stderr.splitlines() if l.startswith("rodimus: turn ")]
    if len(lines) != 3:
        fail(f"expected 3 turn lines on stderr, got {p.stderr!r}")
    first_prompt = f"<role>SYSTEM</role>{system}<role>HUMAN</role>{turns[0]}<role>ASSISTANT</role>"
    g = ok_run(bin_path, ["generate", *model, "--prompt", first_prompt, "-n", str(m),
                          "--ignore-eos"]).stdout
    if not p.stdout.startswith(g):
        fail(f"first chat answer differs from generate: {p.stdout!r} vs {g!r}")
    import re
    context = 0
    for k, (line, turn) in enumerate(zip(lines, [t for t in turns if t])):
        prompt_k, gen_k, _ = summary_fields(line)
        ctx = int(re.search(r"context (\d+) tokens", line).group(1))
        turn_text = (f"<role>SYSTEM</role>{system}" if k == 0 else "") + \
            f"<role>HUMAN</role>{turn}<role>ASSISTANT</role>"
        # the turn's own tokens plus, after the first, the unfed last token of the last answer
        want = len(tokenize(bin_path, model, turn_text)) + (1 if k else 0)
        if prompt_k != want:
            fail(f"turn {k + 1} read {prompt_k} tokens, expected {want}: history re-read?")
        if ctx != context + prompt_k + gen_k - 1:
            fail(f"turn {k + 1}: context {ctx} != {context} + {prompt_k} + {gen_k} - 1")
        context = ctx
    if p.stdout.count("\n") < 3:
        fail(f"chat answers lack their newlines: {p.stdout!r}")

    # Rodimus+ without a window: a prompt beyond max_position_embeddings is refused
    if cfg["block_type"] == "rodimus_plus" and not cfg.get("attn_cfg", {}).get("window_size"):
        limit = cfg["max_position_embeddings"]
        p = run(bin_path, ["generate", *model, "--prompt", " x" * (limit + 5)])
        first_line = p.stderr.splitlines()[0] if p.stderr else ""
        if p.returncode != 2 or f"more than the context limit of {limit}" not in first_line:
            fail(f"long prompt: exit {p.returncode}, {first_line!r}")
    print("ok")


def check_train(bin_path, data_dir, work_dir):
    """train-tokenizer on tests/data/tokenizer_train/corpus: the summary, the committed file
    byte for byte, determinism, --ext / --exclude-dir, and the trained tokenizer through
    tokenize / detokenize against the referee's fixture."""
    os.makedirs(work_dir, exist_ok=True)
    corpus = os.path.join(data_dir, "corpus")
    with open(os.path.join(data_dir, "tokenizer.json"), "rb") as f:
        committed = f.read()
    # the files the command should read: not under test/, valid UTF-8
    used_bytes, used_files = 0, 0
    for root, dirs, files in os.walk(corpus):
        dirs[:] = [d for d in dirs if d != "test"]
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            used_bytes += len(data)
            used_files += 1

    def train(out, *extra):
        p = ok_run(bin_path, ["train-tokenizer", "--input", corpus, "--out", out, *extra])
        kv = parse_kv(p.stdout)
        with open(out, "rb") as f:
            return kv, f.read(), p.stderr

    args = ["--vocab=512", "--exclude-dir", "test", "--special", "<|endoftext|>",
            "--special", "<|pad|>", "--min-frequency", "2"]
    out1, out2 = os.path.join(work_dir, "t1.json"), os.path.join(work_dir, "t2.json")
    kv, text1, _ = train(out1, *args)
    expect = {"files": str(used_files), "skipped_not_utf8": "1", "bytes": str(used_bytes),
              "vocab_size": "512", "merges": "254", "special_tokens": "2", "out": out1}
    for key, value in expect.items():
        if kv.get(key) != value:
            fail(f"summary {key}: {kv.get(key)!r}, expected {value!r}")
    tokens = int(kv["tokens"])
    if abs(float(kv["bytes_per_token"]) - used_bytes / tokens) > 1e-3 or not 1.2 < used_bytes / tokens < 4:
        fail(f"bytes_per_token {kv['bytes_per_token']} for {used_bytes} bytes, {tokens} tokens")
    for key in ("read_seconds", "train_seconds", "write_seconds", "encode_seconds"):
        if not float(kv[key]) >= 0:
            fail(f"{key}: {kv[key]!r}")
    if text1 != committed:
        fail("the written tokenizer.json differs from tests/data/tokenizer_train/tokenizer.json")
    _, text2, _ = train(out2, *args)
    if text2 != text1:
        fail("two runs wrote different files")

    # --ext with and without the dot; --exclude-dir as a relative path
    kv, _, _ = train(os.path.join(work_dir, "py.json"), "--vocab", "300", "--ext", "py")
    if kv["files"] != "3":  # cache.py, util/text.py, test/excluded.py
        fail(f"--ext py read {kv['files']} files")
    kv, _, _ = train(os.path.join(work_dir, "py2.json"), "--vocab", "300", "--ext", ".py",
                     "--ext", ".cpp", "--exclude-dir", "code/util", "--exclude-dir", "test")
    if kv["files"] != "2":  # cache.py, matrix.cpp
        fail(f"--ext .py --ext .cpp --exclude-dir code/util read {kv['files']} files")
    # more tokens than the corpus has pairs for: a note, a smaller vocabulary, success
    kv, _, err = train(os.path.join(work_dir, "big.json"), "--vocab", "100000", "--min-frequency", "50")
    if int(kv["vocab_size"]) >= 100000 or "no pair left to merge at least 50 times" not in err:
        fail(f"vocab_size {kv['vocab_size']}, stderr {err!r}")

    # the trained file through tokenize / detokenize: the referee's ids, the text back
    with open(os.path.join(data_dir, "fixture.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    checked = 0
    for c in cases:
        text = c.get("text")
        if text is None or "\0" in text or not c["ids"] or checked >= 40:
            continue
        if tokenize(bin_path, ["--tokenizer", out1], text) != c["ids"]:
            fail(f"tokenize {text!r} differs from the referee's ids")
        # text-mode stdout turns \r\n and \r into \n
        decoded = c["decoded"].replace("\r\n", "\n").replace("\r", "\n")
        if detokenize(bin_path, ["--tokenizer", out1], c["ids"]) != decoded:
            fail(f"detokenize of {text!r} differs from the referee's text")
        checked += 1
    if checked < 30:
        fail(f"only {checked} fixture cases checked")
    print("ok")

def write_corpus(root, files=40, seed=7):
    """A small deterministic corpus: .py files in a few folders, an excluded test/ folder, a
    .txt file and a file that is not UTF-8 (skipped). Returns the .py paths relative to root."""
    import random
    rnd = random.Random(seed)
    words = ["def ", "return ", "self", ".", "(", ")", ":\n", "    ", "x", " = ", "1", "+",
             "import ", "os", "\n", "if ", "else", "for ", " in ", "range", "print", ", ", "value"]
    nxt = {w: [rnd.choice(words) for _ in range(3)] for w in words}
    shutil.rmtree(root, ignore_errors=True)
    rel = []

    def write(r, n):
        path = os.path.join(root, r)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        w, text = rnd.choice(words), []
        for _ in range(n):
            text.append(w)
            w = rnd.choice(nxt[w])
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(text))

    for i in range(files):
        r = ["a/", "b/c/", ""][i % 3] + f"m{i}.py"
        write(r, rnd.randint(40, 120))
        rel.append(r)
    write("test/excluded.py", 30)
    write("a/notes.txt", 30)
    with open(os.path.join(root, "b", "latin1.py"), "wb") as f:
        f.write(b"caf\xe9\n")
    rel.append("b/latin1.py")
    return sorted(rel)


def fnv1a64(text):
    h = 0xcbf29ce484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def heldout_rule(rel):
    """docs/training.md: round(5 % of the files), at least 1, smallest FNV-1a 64 of the path."""
    k = max(1, int(math.floor(0.05 * len(rel) + 0.5)))
    return sorted(sorted(rel, key=lambda r: (fnv1a64(r), r))[:k])


def check_eval(bin_path, model_dir, work_dir):
    """rodimus eval on a random-weight model: the held-out split equals the documented rule,
    bytes and tokens are those of the held-out files, the loss equals cross-entropy computed
    here from `rodimus logits`, bits per byte = nats / ln 2 / bytes."""
    os.makedirs(work_dir, exist_ok=True)
    data = os.path.join(work_dir, "corpus")
    rel = write_corpus(data)
    filt = ["--ext", ".py", "--exclude-dir", "test"]
    p = ok_run(bin_path, ["eval", "--data", data, "--list-heldout", *filt])
    listed = sorted(os.path.relpath(x, data) for x in p.stdout.split("\n") if x)
    held = [r for r in heldout_rule(rel) if r != "b/latin1.py"]  # not UTF-8: not scored
    if listed != held:
        fail(f"--list-heldout gave {listed}, the rule gives {held}")
    texts = []
    for r in held:
        with open(os.path.join(data, r), encoding="utf-8", newline="") as f:
            texts.append(f.read())
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    model = ["--model", model_dir]
    eot = tokenize(bin_path, model, "<|endoftext|>")
    stream = list(eot)
    for t in texts:
        stream += tokenize(bin_path, model, t) + eot
    targets = len(stream) - 1

    p = ok_run(bin_path, ["eval", *model, "--data", data, *filt, "--seq", "4096"])
    kv = parse_kv(p.stdout)
    if int(kv["files_heldout"]) != len(held) or int(kv["bytes"]) != nbytes:
        fail(f"files_heldout {kv['files_heldout']} bytes {kv['bytes']}, expected {len(held)} {nbytes}")
    if int(kv["tokens"]) != targets or int(kv["windows"]) != 1:
        fail(f"tokens {kv['tokens']} windows {kv['windows']}, expected {targets} and 1")
    nats = float(kv["nats"])
    if abs(float(kv["val_loss"]) - nats / targets) > 1e-5 * nats / targets:
        fail("val_loss is not nats / tokens")
    if abs(float(kv["val_bits_per_byte"]) - nats / math.log(2) / nbytes) > 1e-5:
        fail("val_bits_per_byte is not nats / ln 2 / bytes")
    # the same cross-entropy from the logits of one forward pass
    out = os.path.join(work_dir, "logits.safetensors")
    ok_run(bin_path, ["logits", *model, "--ids", ",".join(map(str, stream[:-1])), "--out", out])
    logits = read_safetensors(out)["logits"]
    v = logits[1][1]
    vals = values(logits)
    ref = 0.0
    for t in range(targets):
        row = vals[t * v:(t + 1) * v]
        m = max(row)
        ref += math.log(sum(math.exp(x - m) for x in row)) + m - row[stream[t + 1]]
    if abs(nats - ref) > 1e-4 * abs(ref):
        fail(f"eval nats {nats}, cross-entropy of the logits {ref}")
    # windows of 16 tokens: ceil(targets / 16) of them, each from an empty context
    kv16 = parse_kv(ok_run(bin_path, ["eval", *model, "--data", data, *filt, "--seq", "16",
                                      "--batch", "3"]).stdout)
    if int(kv16["windows"]) != (targets + 15) // 16 or int(kv16["tokens"]) != targets:
        fail(f"--seq 16: {kv16['windows']} windows, {kv16['tokens']} tokens")
    kvb = parse_kv(ok_run(bin_path, ["eval", *model, "--data", data, *filt, "--seq", "4096",
                                     "--dtype", "bf16"]).stdout)
    if abs(float(kvb["val_loss"]) - float(kv["val_loss"])) > 0.05:
        fail(f"bf16 val_loss {kvb['val_loss']} far from f32 {kv['val_loss']}")
    print("ok")


def check_trainloop(bin_path, tokenizer, golden_config, work_dir):
    """rodimus train with a bigram (n_layer = 0) config end to end: the summary, the loss
    falling, the log, the checkpoint (rodimus eval gives the summary's val_loss), --resume,
    and the runtime errors (a config with blocks, unknown keys, existing checkpoints)."""
    os.makedirs(work_dir, exist_ok=True)
    data = os.path.join(work_dir, "corpus")
    rel = write_corpus(data, files=60, seed=11)
    n_held = len([r for r in heldout_rule(rel) if r != "b/latin1.py"])
    config = os.path.join(work_dir, "bigram.json")
    cfg = {"model_type": "rodimus", "block_type": "rodimus", "d_model": 32, "n_layer": 0,
           "vocab_size": 720, "tie_word_embeddings": True, "bos_token_id": None,
           "eos_token_id": 709, "initializer_range": 0.02}
    with open(config, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(work_dir, "out")
    shutil.rmtree(out, ignore_errors=True)
    base = ["train", "--data", data, "--tokenizer", tokenizer, "--config", config, "--out", out,
            "--ext", ".py", "--exclude-dir", "test", "--batch", "8", "--seq", "32", "--lr", "2e-2",
            "--warmup", "10", "--eval-every", "50", "--checkpoint-every", "60"]
    p = ok_run(bin_path, base + ["--steps", "150"])
    kv = parse_kv(p.stdout)
    for key, value in {"steps": "150", "total_steps": "150", "first_step": "0",
                       "stopped_by_time": "false", "skipped_steps": "0",
                       "files_heldout": str(n_held), "skipped_not_utf8": "1",
                       "tokens_seen": str(150 * 8 * 32)}.items():
        if kv.get(key) != value:
            fail(f"summary {key}: {kv.get(key)!r}, expected {value!r}")
    first, last = float(kv["train_loss_first"]), float(kv["train_loss_last"])
    if not (first > 6.0 and last < first - 2.5):
        fail(f"the training loss did not fall clearly: {first} -> {last}")
    if "step 150/150" not in p.stderr or "eval at step 50" not in p.stderr:
        fail(f"progress lines missing: {p.stderr!r}")
    for name in ("config.json", "model.safetensors", "optimizer.safetensors",
                 "trainer_state.json", "tokenizer.json", "train_log.jsonl"):
        if not os.path.exists(os.path.join(out, name)):
            fail(f"{name} missing from --out")
    with open(os.path.join(out, "train_log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    steps = [e for e in log if e["event"] == "step"]
    evals = [e for e in log if e["event"] == "eval"]
    finals = [e for e in log if e["event"] == "final"]
    if [e["step"] for e in steps] != list(range(1, 151)) or len(evals) != 3 or len(finals) != 1:
        fail(f"log: {len(steps)} steps, {len(evals)} evals, {len(finals)} finals")
    ev = parse_kv(ok_run(bin_path, ["eval", "--model", out, "--data", data]).stdout)
    if ev["filter_from"] != "trainer_state.json" or ev["seq"] != "32":
        fail(f"eval did not take the recorded filter and window: {ev}")
    if ev["val_loss"] != kv["val_loss"] or ev["val_bits_per_byte"] != kv["val_bits_per_byte"]:
        fail(f"eval {ev['val_loss']} / {ev['val_bits_per_byte']} != train's "
             f"{kv['val_loss']} / {kv['val_bits_per_byte']}")
    # the bigram model generates (the inference Model runs n_layer = 0)
    ok_run(bin_path, ["generate", "--model", out, "--prompt", "def ", "-n", "5"])

    # the scripts: the loss plot, the gzip baseline on the same held-out files
    scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
    svg = os.path.join(work_dir, "loss.svg")
    p = subprocess.run([sys.executable, os.path.join(scripts, "plot_loss.py"),
                        os.path.join(out, "train_log.jsonl"), "--out", svg, "--gzip-bpb", "2.5",
                        "--smooth", "10"], capture_output=True, text=True, timeout=TIMEOUT_S)
    if p.returncode != 0:
        fail(f"plot_loss.py: {p.stderr}")
    import xml.dom.minidom
    doc = xml.dom.minidom.parse(svg)
    if len(doc.getElementsByTagName("polyline")) < 3 or len(doc.getElementsByTagName("circle")) < 4:
        fail("loss.svg lacks the curves or the evaluation dots")
    env = dict(os.environ, RODIMUS=bin_path)
    p = subprocess.run([os.path.join(scripts, "gzip_baseline.sh"), data, "--ext", ".py",
                        "--exclude-dir", "test"], capture_output=True, text=True,
                       timeout=TIMEOUT_S, env=env)
    if p.returncode != 0:
        fail(f"gzip_baseline.sh: {p.stderr}")
    gz = parse_kv(p.stdout)
    if gz["files"] != kv["files_heldout"] or gz["bytes"] != kv["heldout_bytes"]:
        fail(f"gzip_baseline.sh: {gz['files']} files / {gz['bytes']} bytes, eval scores "
             f"{kv['files_heldout']} / {kv['heldout_bytes']}")
    if not 0.5 < float(gz["gzip_bits_per_byte"]) < 8:
        fail(f"gzip_bits_per_byte {gz['gzip_bits_per_byte']}")
    # train-tokenizer --skip-heldout leaves out exactly the held-out files
    tk = parse_kv(ok_run(bin_path, ["train-tokenizer", "--input", data, "--vocab", "300",
                                    "--out", os.path.join(work_dir, "tok.json"), "--ext", ".py",
                                    "--exclude-dir", "test", "--skip-heldout"]).stdout)
    all_held = heldout_rule(rel)
    if int(tk["skipped_heldout"]) != len(all_held) or \
            int(tk["files"]) + int(tk["skipped_not_utf8"]) != len(rel) - len(all_held):
        fail(f"--skip-heldout: {tk}")

    # an existing checkpoint needs --resume; --resume continues it
    p = run(bin_path, base + ["--steps", "200"])
    if p.returncode != 1 or "already holds a training checkpoint" not in p.stderr:
        fail(f"no --resume: exit {p.returncode}, {p.stderr!r}")
    kv2 = parse_kv(ok_run(bin_path, base + ["--steps", "200", "--resume"]).stdout)
    if kv2["first_step"] != "150" or kv2["steps"] != "200":
        fail(f"resume: first_step {kv2['first_step']}, steps {kv2['steps']}")
    p = run(bin_path, base + ["--steps", "210", "--resume", "--seed", "5"])
    if p.returncode != 1 or "seed" not in p.stderr:
        fail(f"resume with another seed: exit {p.returncode}, {p.stderr!r}")

    # SIGINT: the step completes, a checkpoint and the summary follow, exit 0
    out_s = os.path.join(work_dir, "out_signal")
    shutil.rmtree(out_s, ignore_errors=True)
    env = dict(os.environ, OMP_PROC_BIND="false", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([bin_path, *[a if a != out else out_s for a in base],
                             "--steps", "1000000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    while "step 1/1000000" not in seen:
        line = proc.stderr.readline()
        if not line:
            fail(f"train ended before its first step: {seen}")
        seen += line
    import signal
    proc.send_signal(signal.SIGINT)
    try:
        so, se = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("train did not stop after SIGINT")
    kvs = parse_kv(so)
    if proc.returncode != 0 or kvs.get("stopped_by_signal") != "true" or "interrupted" not in se:
        fail(f"SIGINT: exit {proc.returncode}, {kvs}, {se!r}")
    with open(os.path.join(out_s, "trainer_state.json")) as f:
        if json.load(f)["step"] != int(kvs["steps"]):
            fail("the checkpoint after SIGINT is not at the last step")

    # a time budget without --steps: the schedule is fitted, the run stops in time
    out_t = os.path.join(work_dir, "out_time")
    shutil.rmtree(out_t, ignore_errors=True)
    tb = [a if a != out else out_t for a in base]
    kvt = parse_kv(ok_run(bin_path, tb + ["--minutes", "0.02"]).stdout)
    if int(kvt["total_steps"]) < 5 or float(kvt["train_seconds"]) > 5:
        fail(f"--minutes 0.02: total_steps {kvt['total_steps']}, {kvt['train_seconds']} s")

    def error(args, pattern):
        p = run(bin_path, args)
        first = p.stderr.splitlines()[0] if p.stderr else ""
        if p.returncode != 1 or pattern not in first:
            fail(f"expected exit 1 and {pattern!r}, got {p.returncode}: {p.stderr!r}")

    fresh = [a if a != out else os.path.join(work_dir, "out_err") for a in base] + ["--steps", "5"]
    # a Rodimus+ with blocks trains through the whole-model backward: the loss falls
    plus = os.path.join(work_dir, "plus.json")
    with open(plus, "w") as f:
        json.dump({**cfg, "block_type": "rodimus_plus", "n_layer": 1, "d_model": 32,
                   "mixer_cfg": {"mem_size": 8}, "attn_cfg": {"num_heads": 2, "num_heads_k": 1,
                                                              "num_heads_v": 2, "window_size": 16}},
                  f)
    out_p = os.path.join(work_dir, "out_plus")
    shutil.rmtree(out_p, ignore_errors=True)
    kvp = parse_kv(ok_run(bin_path, [a if a not in (config, out) else (plus if a == config else out_p)
                                     for a in base] + ["--steps", "60"]).stdout)
    if not float(kvp["train_loss_last"]) < float(kvp["train_loss_first"]) - 1.5:
        fail(f"Rodimus+ training loss did not fall clearly: {kvp}")
    ev = parse_kv(ok_run(bin_path, ["eval", "--model", out_p, "--data", data]).stdout)
    if ev["val_loss"] != kvp["val_loss"]:
        fail(f"eval {ev['val_loss']} != train's {kvp['val_loss']} on the Rodimus+ checkpoint")
    bad = os.path.join(work_dir, "typo.json")
    with open(bad, "w") as f:
        json.dump({**cfg, "d_modle": 64}, f)
    error([a if a != config else bad for a in fresh], "unknown config key 'd_modle'")
    with open(bad, "w") as f:
        json.dump({**cfg, "mixer_cfg": {"mem_sise": 8}}, f)
    error([a if a != config else bad for a in fresh], "unknown config key 'mixer_cfg.mem_sise'")
    with open(bad, "w") as f:
        json.dump({**cfg, "vocab_size": 100, "eos_token_id": None}, f)
    error([a if a != config else bad for a in fresh], "smaller than the tokenizer's 710 tokens")
    error([a if a != config else os.path.join(work_dir, "none.json") for a in fresh],
          "does not exist")
    error([a if a != data else os.path.join(work_dir, "none") for a in fresh], "does not exist")
    error(fresh + ["--resume"], "holds no training checkpoint")
    error([a if a != "32" else "100000" for a in fresh], "fewer than --seq + 1")
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
    elif mode == "text":
        check_text(bin_path, *rest)
    elif mode == "train":
        check_train(bin_path, *rest)
    elif mode == "eval":
        check_eval(bin_path, *rest)
    elif mode == "trainloop":
        check_trainloop(bin_path, *rest)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
