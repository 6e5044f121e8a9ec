"""A tiny llama-architecture GGUF model with random weights, written at test time: no download.

Runs under .venv-llama's Python (it needs `gguf` and numpy, which the project's venv does not pin):
    .venv-llama/bin/python -m tests.support.tiny_gguf PATH [SEED]

The model is 2 layers of width 64 over a byte-level GPT-2 BPE vocabulary (256 byte tokens, a few merged
words, ChatML's control tokens) with a ChatML chat template, so llama.cpp's /v1/chat/completions works.
Its weights are random but shaped so that what it writes is always printable ASCII and never ends on its
own: every generation runs to `max_tokens` (finish_reason "length") unless a `stop` string ends it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

NAME = "tiny-llama"
NUM_LAYERS = 2
EMBEDDING = 64  # hidden width
NUM_HEADS = 4
FEED_FORWARD = 128
CONTEXT = 4096  # what --engine openai assumes when a server does not say (llama.cpp's server does not)
CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
BOS, EOS = 0, 2  # <|endoftext|>, <|im_end|>
# A few merged words so that tokens are not all single bytes, as in a real BPE vocabulary.
WORDS = (" the", " and", " of", " to", " in", " is", " it", " that", " was", " for", " on", " with", " as",
         " text", " word", " line", " draft", " editor", " redraft", "ing", "ed", "er", "tion")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: every byte as one printable character (what llama.cpp's 'gpt2' expects)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in chars]
    chars.update({b: chr(256 + n) for n, b in enumerate(others)})
    return dict(sorted(chars.items()))


def vocabulary() -> tuple[list[str], list[str], list[bool]]:
    """(tokens, merges, is_printable): tokens as GGUF stores them, and which ones decode to printable ASCII."""
    alphabet = byte_to_unicode()
    tokens = [*CONTROL_TOKENS, *alphabet.values()]
    is_printable = [False] * len(CONTROL_TOKENS) + [0x20 <= b < 0x7F for b in alphabet]
    merges: list[str] = []
    for word in WORDS:
        pieces = [alphabet[b] for b in word.encode()]
        merged = pieces[0]
        for piece in pieces[1:]:  # left to right: "Ġ t", "Ġt h", "Ġth e"
            if merged + piece not in tokens:
                merges.append(f"{merged} {piece}")
                tokens.append(merged + piece)
                is_printable.append(True)
            merged += piece
    return tokens, merges, is_printable


def weights(num_tokens: int, is_printable: list[bool], seed: int) -> dict[str, np.ndarray]:
    """Random float32 tensors under llama.cpp's names, shaped [out, in] like torch's Linear."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def linear(num_out: int, num_in: int):  # [out, in]
        return (rng.standard_normal((num_out, num_in)) / np.sqrt(num_in)).astype(np.float32)

    ones = np.ones(EMBEDDING, dtype=np.float32)
    # Dimension 0 of the residual stream is a constant 16 that no layer writes to (row 0 of the output
    # projections is zero): after the final RMS norm it is about 7.2 against about 0.45 for the other 63.
    # The unembedding's column 0 is +3 for printable tokens and -3 for the rest. Measured over a ChatML
    # prompt with non-ASCII text: the best printable token beats the best other one by at least 31 logits,
    # while printable logits spread by about 3. So even sampling at temperature 1 picks a non-printable
    # token (or EOS) with probability below 130 * e^-31 (about e^-26) per step, and which printable token
    # wins still depends on the context.
    embedding = rng.standard_normal((num_tokens, EMBEDDING)).astype(np.float32)  # [V, D]
    embedding[:, 0] = 16.0
    unembedding = (0.5 * rng.standard_normal((num_tokens, EMBEDDING))).astype(np.float32)  # [V, D]
    unembedding[:, 0] = np.where(is_printable, 3.0, -3.0)
    tensors = {"token_embd.weight": embedding, "output_norm.weight": ones, "output.weight": unembedding}
    for layer in range(NUM_LAYERS):
        attn_output, ffn_down = linear(EMBEDDING, EMBEDDING), linear(EMBEDDING, FEED_FORWARD)
        attn_output[0], ffn_down[0] = 0.0, 0.0
        tensors |= {
            f"blk.{layer}.attn_norm.weight": ones,
            f"blk.{layer}.attn_q.weight": linear(EMBEDDING, EMBEDDING),
            f"blk.{layer}.attn_k.weight": linear(EMBEDDING, EMBEDDING),
            f"blk.{layer}.attn_v.weight": linear(EMBEDDING, EMBEDDING),
            f"blk.{layer}.attn_output.weight": attn_output,
            f"blk.{layer}.ffn_norm.weight": ones,
            f"blk.{layer}.ffn_gate.weight": linear(FEED_FORWARD, EMBEDDING),
            f"blk.{layer}.ffn_up.weight": linear(FEED_FORWARD, EMBEDDING),
            f"blk.{layer}.ffn_down.weight": ffn_down,
        }
    return tensors


def write_tiny_gguf(path: Path, seed: int = 0) -> None:
    import gguf

    tokens, merges, is_printable = vocabulary()
    token_types = [gguf.TokenType.CONTROL] * len(CONTROL_TOKENS)
    token_types += [gguf.TokenType.NORMAL] * (len(tokens) - len(CONTROL_TOKENS))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(NAME)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(NUM_LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(NUM_HEADS)
    writer.add_head_count_kv(NUM_HEADS)
    writer.add_rope_dimension_count(EMBEDDING // NUM_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in weights(len(tokens), is_printable, seed).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    write_tiny_gguf(Path(sys.argv[1]), seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
