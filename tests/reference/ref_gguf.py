"""A llama GGUF (F32, F16, BF16 or any block type gguf-py dequantizes) as the Hugging Face model
the float64 reference reads: config.json from the metadata, model.safetensors of the
dequantized values. Independent of lorafit's C: the file is read by gguf-py's GGUFReader and
dequantized by gguf-py's numpy code (gguf/quants.py, llama.cpp's own Python package, cloned at
/tmp/llama.cpp/gguf-py); llama.cpp's Q/K row permutation (convert_hf_to_gguf.py's
LlamaModel.permute) is undone and the names mapped back to Hugging Face's.

Also the FNV-1a 64 hash of each tensor's dequantized float32 values in the file's own order
(what ggml's to_float gives: the test compares lorafit's against these, bit for bit).

    PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 ref_gguf.py FILE.gguf OUT_DIR"""
import json, os, sys, numpy as np
sys.path.insert(0, os.path.dirname(__file__)); import st
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize

LEAVES = {'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj',
          'attn_output': 'self_attn.o_proj', 'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj',
          'ffn_down': 'mlp.down_proj', 'attn_norm': 'input_layernorm', 'ffn_norm': 'post_attention_layernorm'}

def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data: h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f'{h:016x}'

def unpermute(w, heads):
    """LlamaModel.permute's inverse: file row h*D + 2i + j holds Hugging Face row h*D + j*D/2 + i."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None: return default
    v = f.contents()
    return v

def to_hf(path, out):
    """Writes out/config.json and out/model.safetensors; returns (config, {tensor: fnv1a64})."""
    r = GGUFReader(path)
    arch = field(r, 'general.architecture')
    assert arch == 'llama', f'{path}: arch {arch}: this reference reads llama GGUFs only'
    a = lambda k, d=None: field(r, f'llama.{k}', d)
    t = {x.name: x for x in r.tensors}
    vocab = int(t['token_embd.weight'].shape[1])
    cfg = dict(architectures=['LlamaForCausalLM'], model_type='llama', hidden_size=int(a('embedding_length')),
               intermediate_size=int(a('feed_forward_length')), num_hidden_layers=int(a('block_count')),
               num_attention_heads=int(a('attention.head_count')), num_key_value_heads=int(a('attention.head_count_kv')),
               rms_norm_eps=float(a('attention.layer_norm_rms_epsilon')), rope_theta=float(a('rope.freq_base', 10000.0)),
               max_position_embeddings=int(a('context_length')), vocab_size=vocab,
               tie_word_embeddings='output.weight' not in t, torch_dtype='float32')
    hd = a('attention.key_length')
    if hd is not None: cfg['head_dim'] = int(hd)
    w, hashes = {}, {}
    for name, x in t.items():
        v = np.ascontiguousarray(dequantize(x.data, GGMLQuantizationType(x.tensor_type)).astype(np.float32, copy=False))
        hashes[name] = fnv1a64(v.tobytes())
        parts = name.split('.')
        if name == 'token_embd.weight': hf = 'model.embed_tokens.weight'
        elif name == 'output_norm.weight': hf = 'model.norm.weight'
        elif name == 'output.weight': hf = 'lm_head.weight'
        else:
            assert parts[0] == 'blk' and parts[2] in LEAVES, f'{path}: tensor {name} is not one of a llama'
            hf = f'model.layers.{parts[1]}.{LEAVES[parts[2]]}.{parts[3]}'
            if parts[2] == 'attn_q': v = unpermute(v, cfg['num_attention_heads'])
            if parts[2] == 'attn_k': v = unpermute(v, cfg['num_key_value_heads'])
        w[hf] = np.ascontiguousarray(v)
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, 'config.json'), 'w'), indent=2)
    st.save(os.path.join(out, 'model.safetensors'), w, {'format': 'pt'})
    return cfg, hashes

if __name__ == '__main__':
    cfg, hashes = to_hf(sys.argv[1], sys.argv[2])
    print(json.dumps(hashes, indent=1))
