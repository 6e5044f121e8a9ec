"""Tokenizers: the checkpoint's own (chat template included), a byte-level one built in code for `tiny`, and
the byte-level BPE one trained for `redraft-small`.

The byte tokenizer maps every UTF-8 byte to one token, so any text round-trips; it uses Gemma's special ids
(pad 0, eos 1, bos 2) and Gemma 4's turn markers, and fills the rest of the vocabulary with unused specials
so that every id a random model can emit decodes. The BPE one has the same specials at the same ids, the 256
bytes, then merges learnt from a corpus: any text still round-trips.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

PAD, EOS, BOS, UNK, MASK, TURN_START, TURN_END = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"
SPECIALS = (PAD, EOS, BOS, UNK, MASK, TURN_START, TURN_END)
TURN_END_ID = SPECIALS.index(TURN_END)
NUM_BYTE_TOKENS = 256
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Gemma 4's turn format: <bos><|turn>user\n...<turn|>\n<|turn>model\n
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' }}"
    "{{ message['content'] | trim }}{{ '<turn|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|turn>model\\n' }}{% endif %}"
)


def byte_tokenizer(vocab_size: int):
    """A PreTrainedTokenizerFast with exactly `vocab_size` ids: specials, 256 bytes, then `<unusedN>` fillers."""
    from transformers import PreTrainedTokenizerFast

    minimum = len(SPECIALS) + NUM_BYTE_TOKENS
    if vocab_size < minimum:
        raise ValueError(f"the byte tokenizer needs vocab_size >= {minimum}, got {vocab_size}")
    byte_chars = pre_tokenizers.ByteLevel.alphabet()
    # ByteLevel's alphabet is a set: order it by the byte each character stands for
    byte_chars = sorted(byte_chars, key=_byte_of)
    fillers = [f"<unused{i}>" for i in range(vocab_size - minimum)]
    vocab = {token: i for i, token in enumerate([*SPECIALS, *byte_chars, *fillers])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    core.add_special_tokens([*SPECIALS, *fillers])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        chat_template=CHAT_TEMPLATE,
    )


def bpe_tokenizer(texts, vocab_size: int):
    """A byte-level BPE PreTrainedTokenizerFast of exactly `vocab_size` ids trained on `texts` (an iterable of
    str); the specials, <bos> post-processing and chat template of byte_tokenizer. Deterministic for the same
    texts in the same order."""
    from tokenizers import trainers
    from transformers import PreTrainedTokenizerFast

    minimum = len(SPECIALS) + NUM_BYTE_TOKENS
    if vocab_size <= minimum:
        raise ValueError(f"the BPE tokenizer needs vocab_size > {minimum}, got {vocab_size}")
    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    if core.get_vocab_size() != vocab_size:  # too little text to learn that many merges
        raise ValueError(f"the corpus yields {core.get_vocab_size()} BPE tokens, fewer than vocab_size {vocab_size}")
    bos = core.token_to_id(BOS)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        mask_token=MASK,
        chat_template=CHAT_TEMPLATE,
    )


def load_tokenizer(directory: Path):
    """The checkpoint's tokenizer, or None when it ships no tokenizer files (ids-only use)."""
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{directory}: cannot load the tokenizer files ({error})") from error


def _byte_of(char: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n."""
    code = ord(char)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def end_of_turn_id(tokenizer) -> int:
    """The token a model turn ends with (<turn|>), or <eos> for a tokenizer without turn markers."""
    turn_end = tokenizer.convert_tokens_to_ids(TURN_END)
    if turn_end is None or turn_end == tokenizer.unk_token_id:
        return tokenizer.convert_tokens_to_ids(EOS)
    return turn_end
