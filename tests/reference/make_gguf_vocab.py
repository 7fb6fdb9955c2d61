"""tests/reference/make_gguf_vocab.py — a vocab-only GGUF of a SentencePiece model, written by
llama.cpp's own gguf-py the way convert_hf_to_gguf.py's _create_vocab_sentencepiece and
gguf.SpecialVocab write it (tokens, scores and types from tokenizer.model; added_tokens_decoder
marks its tokens CONTROL with score -1000; bos / eos / unk ids and add_bos / add_eos from
tokenizer_config.json). The converter itself needs the sentencepiece and transformers modules;
this reads tokenizer.model's protobuf directly, so it runs with gguf-py and numpy alone:

    PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 tests/reference/make_gguf_vocab.py \
        ../shared/models/stories260K tests/data/tokenizer/stories260K_gguf_py.gguf
"""
import json
import struct
import sys

import gguf


def varint(b, i):
    v = s = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def pieces(model):
    for num, _, v in fields(model):
        if num != 1:
            continue
        piece, score, kind = "", 0.0, 1
        for n2, _, v2 in fields(v):
            if n2 == 1:
                piece = v2.decode("utf-8")
            elif n2 == 2:
                score = struct.unpack("<f", v2)[0]
            elif n2 == 3:
                kind = v2
        yield piece, score, kind


def main(model_dir, out):
    sp = list(pieces(open(f"{model_dir}/tokenizer.model", "rb").read()))
    # SentencePiece's types: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6, UNUSED 5
    tokens = [p.encode("utf-8") for p, _, _ in sp]
    scores = [s for _, s, _ in sp]
    types = [k for _, _, k in sp]
    cfg = json.load(open(f"{model_dir}/tokenizer_config.json"))
    for tid, t in cfg.get("added_tokens_decoder", {}).items():
        tid = int(tid)
        types[tid] = 3 if t.get("special") else 4
        scores[tid] = -1000.0
        tokens[tid] = t["content"].encode("utf-8")
    w = gguf.GGUFWriter(out, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    ids = {t["content"]: int(i) for i, t in cfg.get("added_tokens_decoder", {}).items()}
    for name, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                      ("unk", w.add_unk_token_id)):
        tok = cfg.get(f"{name}_token")
        if isinstance(tok, str) and tok in ids:
            add(ids[tok])
    if "add_bos_token" in cfg:
        w.add_add_bos_token(cfg["add_bos_token"])
    if "add_eos_token" in cfg:
        w.add_add_eos_token(cfg["add_eos_token"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
