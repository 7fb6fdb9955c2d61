#!/usr/bin/env python3
"""tests/reference/quant/make_gguf_py.py — a small GGUF written by llama.cpp's gguf-py, for
tests/test_gguf_read.c: every value type (scalars, strings, arrays of each), and tensors of
every type lorafit reads, with raw bytes whose values the test knows (byte i of a tensor is
(i * 7 + the tensor's index) & 0xff), under general.alignment 64.

Run: PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 tests/reference/quant/make_gguf_py.py \
        tests/data/quant/gguf_py_values.gguf
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

out = sys.argv[1]
w = gguf.GGUFWriter(out, arch="llama")
w.add_custom_alignment(64)
w.add_uint8("t.u8", 200)
w.add_int8("t.i8", -100)
w.add_uint16("t.u16", 60000)
w.add_int16("t.i16", -30000)
w.add_uint32("t.u32", 4000000000)
w.add_int32("t.i32", -2000000000)
w.add_float32("t.f32", 1.5)
w.add_bool("t.bool", True)
w.add_string("t.str", "héllo")
w.add_uint64("t.u64", 2**62 + 3)
w.add_int64("t.i64", -(2**62) - 3)
w.add_float64("t.f64", -2.25)
w.add_key_value("t.arr_str", ["a", "", "bc", "\u00e9\u00e9"], V.ARRAY, V.STRING)
w.add_key_value("t.arr_i32", [1, -2, 3], V.ARRAY, V.INT32)
w.add_key_value("t.arr_u8", [255, 0], V.ARRAY, V.UINT8)
w.add_key_value("t.arr_f64", [0.5, -1e300], V.ARRAY, V.FLOAT64)
w.add_key_value("t.arr_bool", [True, False, True], V.ARRAY, V.BOOL)

types = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K,
         Q.Q5_K, Q.Q6_K]
for i, t in enumerate(types):
    block, nbytes = gguf.GGML_QUANT_SIZES[t]
    rows, cols = 2, 256
    n = rows * cols // block * nbytes
    raw = ((np.arange(n, dtype=np.int64) * 7 + i) & 0xFF).astype(np.uint8).reshape(rows, -1)
    # bytes (rows, row bytes); gguf-py turns that into the (rows, cols) shape of type t
    w.add_tensor(f"t{i}.{t.name}", raw, raw_dtype=t)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
