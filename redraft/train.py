"""`redraft train`: train the small model from a corpus, LoRA-fine-tune a checkpoint on JSONL pairs, or evaluate.

    redraft train --corpus english-docs --out engine/models/redraft-small --seed 0   # from scratch, ~1 h on 2 cores
    redraft train --model DIR --data pairs.jsonl --out DIR --lora-rank 16 [--merge]   # fine-tune (a GPU in practice)
    redraft train --eval-only --model redraft-small [--held-out FILE]                 # the evaluation alone
    redraft train --corpus english-docs --export-held-out FILE                        # the test fixture
    redraft train --corpus english-docs --export-corpus FILE.json.gz     # the corpus packed for a GPU machine
    python -m redraft.train --corpus english-docs --corpus-file FILE.json.gz ...      # training there from it

Importing this module is cheap (no torch): the server adds these arguments to its own parser. Progress goes to
stderr, the evaluation to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from redraft.flags import env_flag, env_value

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# redraft-small's mix of example kinds (training/examples.py): mostly the edits it declares; plain text, fill and
# continue teach the encoder the language
KIND_WEIGHTS = {"plain": 0.1, "fix": 0.45, "shorten": 0.25, "fill": 0.1, "continue": 0.1}
# what redraft-small declares. It trains on every kind, but after two hours of CPU its fill and continue write
# word salad and its shorten changes nothing; its fix, choosing among the words its lexicon has one slip away,
# removes 87 % of slips and changes 2 correct words in 2,390 (README, "The small model"). A model trained longer
# declares more.
DECLARED_TASKS = ["fix"]
# edits only where the model is sure (engine/runtime/generate.py committed_edits): 0.5 nats kept broken words at 0.4 % on
# held-out text (not the README's evaluation paragraphs) where the bare argmax broke 1.3 %
EDIT_ENTROPY_BOUND = 0.5
SMALL_MODEL_NOTE = (
    "A small local model trained on a CPU: it fixes typos and doubled words and changes nothing else. "
    'The README\'s "Running DiffusionGemma" explains running the full model.'
)
HELD_OUT_EVAL = 512  # canvases in the training command's evaluation
FIXTURE_PARAGRAPHS = 32


class UsageError(ValueError):
    """Bad flags: reported on stderr with exit status 2."""


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train` flags; each also reads REDRAFT_<FLAG> from the environment."""
    add = parser.add_argument
    add("--corpus", default=env_value("corpus"), help="train from scratch on this corpus: english-docs or python-docs")
    add("--corpus-dir", default=env_value("corpus_dir"), help="its sources (default: where python3.11-doc puts them)")
    add("--corpus-file", default=env_value("corpus_file"),
        help="train from this packed corpus (--export-corpus) instead of the installed packages")
    add("--export-corpus", default=env_value("export_corpus"),
        help="pack --corpus, its licences and the word list into this file (.json.gz) and stop")
    add("--config", default=env_value("config", "redraft-small"), help="shapes to train from scratch (redraft-small)")
    add("--model", default=env_value("model"), help="the checkpoint to fine-tune or evaluate; with --corpus, to train on")
    add("--data", default=env_value("data"), help='fine-tune: JSONL of {"prompt": ..., "response": ...}')
    add("--out", default=env_value("out"), help="where the trained checkpoint (or the adapters) go")
    add("--steps", default=env_value("steps"), help="optimizer steps (default 3000 from scratch, 200 fine-tuning)")
    add("--minutes", default=env_value("minutes"), help="from scratch: fit the steps into this much wall time")
    add("--batch-size", default=env_value("batch_size"), help="canvases per step (default 16 from scratch, 8 fine-tuning)")
    add("--lr", default=env_value("lr"), help="peak learning rate (default 3e-3 from scratch, 1e-4 fine-tuning)")
    add("--seed", default=env_value("seed", "0"))
    add("--self-cond-prob", default=env_value("self_cond_prob", "0.5"), help="share of rows trained self-conditioned")
    add(
        "--encoder-loss-weight",
        default=env_value("encoder_loss_weight"),
        help="weight of the encoder's next-token loss on the prompts (default 1 from scratch, 0 fine-tuning)",
    )
    add("--lora-rank", default=env_value("lora_rank", "16"))
    add("--lora-alpha", default=env_value("lora_alpha", "32"))
    add("--merge", action="store_true", default=env_flag("merge"), help="save the merged model, not the adapters")
    add("--device", default=env_value("device"), help="cpu or cuda (default: cuda when available)")
    add("--threads", default=env_value("threads", "1"), help="CPU threads for torch (default 1)")
    add("--dtype", default=env_value("dtype"), help="fine-tuning: the base's dtype (default bfloat16 on cuda)")
    add("--eval-only", action="store_true", default=env_flag("eval_only"), help="evaluate --model and stop")
    add("--held-out", default=env_value("held_out"), help="paragraphs (blank-line separated) to evaluate on")
    add("--export-held-out", default=env_value("export_held_out"), help="write held-out paragraphs of --corpus here")


def run_train(args: argparse.Namespace) -> int:
    try:
        mode = _mode(args)
        import torch

        # one thread by default: on a shared small machine OpenMP's spin-waiting costs more than it gains
        torch.set_num_threads(_int("--threads", args.threads))
        modes = {"corpus": _from_scratch, "lora": _fine_tune, "eval": _eval_only, "export": _export,
                 "pack": _export_corpus}
        return modes[mode](args)
    except UsageError as error:
        print(f"redraft train: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, RuntimeError) as error:
        print(f"redraft train: {error}", file=sys.stderr)
        return EXIT_FAILED


def _mode(args: argparse.Namespace) -> str:
    if args.eval_only:
        if args.data:
            raise UsageError("--eval-only evaluates --model; it takes no --data")
        return "eval"
    if args.export_held_out:
        if not args.corpus:
            raise UsageError("--export-held-out needs --corpus")
        return "export"
    if args.export_corpus:
        if not args.corpus or args.corpus_file or args.corpus_dir:
            raise UsageError("--export-corpus packs the installed --corpus: give --corpus alone")
        return "pack"
    if args.corpus_file and args.corpus_dir:
        raise UsageError("--corpus-file or --corpus-dir, not both")
    if bool(args.corpus) == bool(args.data):
        raise UsageError("give --corpus (train from scratch) or --data with --model (fine-tune), not both")
    if not args.out:
        raise UsageError("--out is required")
    if args.data and not args.model:
        raise UsageError("--data needs --model: the checkpoint to fine-tune")
    return "corpus" if args.corpus else "lora"


def _from_scratch(args: argparse.Namespace) -> int:
    import random

    import torch

    from engine.model.config import TRAINABLE_CONFIGS, GenerationArgs
    from engine.text.tokenizer import TURN_END_ID, bpe_tokenizer
    from engine.weights.checkpoint import load_model
    from jobs.tasks import ModelTasks
    from training.corpus import corpus_licences, split_documents
    from training.evaluate import write_token_counts
    from training.examples import DocumentExamples, collate
    from training.lexicon import WordList, write_lexicon
    from training.train import declare_tasks, save_checkpoint, train, trainable_model

    if args.config not in TRAINABLE_CONFIGS:
        raise UsageError(f"--config must be one of {', '.join(TRAINABLE_CONFIGS)}, got {args.config!r}")
    shapes = TRAINABLE_CONFIGS[args.config]
    options = _train_args(args, steps=3000, batch_size=16, lr=2e-3, encoder_loss_weight=1.0)
    device = _device(args)
    started = time.perf_counter()
    packed = _packed(args)
    train_docs, held_out = split_documents(packed.documents if packed else _documents(args))
    _log(f"{len(train_docs)} training and {len(held_out)} held-out documents of {args.corpus}")
    if args.model:  # a second stage: the checkpoint's weights and tokenizer train on
        start = load_model(args.model, device)
        shapes, tokenizer = start.args, start.tokenizer
    else:
        tokenizer = bpe_tokenizer((p for d in train_docs for p in d.paragraphs), shapes.vocab_size)
    examples = DocumentExamples(tokenizer, train_docs, shapes.canvas_length, shapes.pad_token_id, options.seed)
    _log(f"tokenizer: {len(tokenizer)} BPE tokens; {sum(map(len, examples.streams)):,} training tokens")
    kinds = random.Random(options.seed + 1)

    def next_batch(step: int):
        # kinds mixed within a batch: each step's gradient sees every task
        drawn = kinds.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()), k=options.batch_size)
        batch = [example for kind in KIND_WEIGHTS for example in examples.batch(kind, drawn.count(kind))]
        return collate(batch, shapes.pad_token_id, device)

    torch.manual_seed(options.seed)
    model = start.model.float().requires_grad_(True) if args.model else trainable_model(shapes, options.seed, device)
    _log(f"{args.config}: {sum(p.numel() for p in model.parameters()):,} parameters; {options.steps} steps")
    generation = GenerationArgs(max_new_tokens=shapes.canvas_length, eos_token_ids=(1, TURN_END_ID))
    train(model, next_batch, options, generation)
    out = save_checkpoint(model, generation, tokenizer, Path(args.out))
    declare_tasks(out, ModelTasks(tuple(DECLARED_TASKS), "passage", SMALL_MODEL_NOTE, EDIT_ENTROPY_BOUND))
    write_token_counts(examples.streams, shapes.vocab_size, out)
    _write_licences(packed.licences if packed else corpus_licences(args.corpus), out)
    write_lexicon(train_docs, out, packed.word_list if packed else WordList.installed())  # adds its licence
    _log(f"saved {out} ({_size_mb(out):.1f} MB) after {time.perf_counter() - started:.0f} s")
    return _evaluate(str(out), [p for d in held_out for p in d.paragraphs], device, options.seed)


def _fine_tune(args: argparse.Namespace) -> int:
    import torch

    from engine.weights.checkpoint import load_model
    from engine.weights.lora import add_lora, merge_lora, save_adapters
    from training.examples import collate, pair_examples, read_pairs
    from training.train import diffusion_loss, save_checkpoint, train

    options = _train_args(args, steps=200, batch_size=8, lr=1e-4, encoder_loss_weight=0.0)
    device = _device(args)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device == "cuda" else "float32"))
    loaded = load_model(args.model, device, dtype, options.seed)
    if loaded.tokenizer is None:
        raise UsageError(f"{args.model} has no tokenizer: the pairs cannot be encoded")
    pairs = read_pairs(Path(args.data))
    examples = pair_examples(loaded.tokenizer, pairs, loaded.args.pad_token_id, loaded.args.canvas_length)
    wrapped = add_lora(loaded.model, _int("--lora-rank", args.lora_rank), float(args.lora_alpha), options.seed)
    num_trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    _log(f"{len(examples)} canvases; LoRA on {len(wrapped)} projections, {num_trainable:,} trainable parameters")
    generator = torch.Generator().manual_seed(options.seed)

    def next_batch(step: int):
        picks = torch.randint(len(examples), (options.batch_size,), generator=generator).tolist()
        return collate([examples[i] for i in picks], loaded.args.pad_token_id, device)

    batch = collate(examples, loaded.args.pad_token_id, device)
    before = _mean_loss(loaded, batch, options, diffusion_loss)
    train(loaded.model, next_batch, options, loaded.generation)
    after = _mean_loss(loaded, batch, options, diffusion_loss)
    _log(f"loss on the pairs (fixed noise draws): {before:.4f} before, {after:.4f} after")
    out = Path(args.out)
    if args.merge:
        save_checkpoint(merge_lora(loaded.model), loaded.generation, loaded.tokenizer, out, dtype=dtype)
    else:
        save_adapters(loaded.model, out, args.model)
    _log(f"saved {'the merged model' if args.merge else 'the adapters'} to {out}")
    return EXIT_OK


def _mean_loss(loaded, batch, options, diffusion_loss) -> float:
    import torch

    with torch.no_grad():
        generator = torch.Generator(device=batch.targets.device).manual_seed(options.seed + 7)
        return diffusion_loss(loaded.model, batch, loaded.generation, generator, options.self_cond_prob).loss.item()


def _eval_only(args: argparse.Namespace) -> int:
    from training.corpus import read_paragraph_file, split_documents

    if args.held_out:
        paragraphs = read_paragraph_file(Path(args.held_out))
    else:
        args.corpus = args.corpus or "english-docs"
        paragraphs = [p for d in split_documents(_documents(args))[1] for p in d.paragraphs]
    return _evaluate(args.model or "redraft-small", paragraphs, _device(args), _int("--seed", args.seed))


def _evaluate(model: str, paragraphs: list[str], device: str, seed: int) -> int:
    from engine.weights.checkpoint import load_model, resolve_checkpoint
    from training.evaluate import (
        format_accuracy,
        format_samples,
        held_out_examples,
        read_token_counts,
        reconstruction_accuracy,
        sample_redrafts,
    )

    loaded = load_model(model, device)
    if loaded.tokenizer is None:
        raise UsageError(f"{model} has no tokenizer to evaluate with")
    examples = held_out_examples(loaded.tokenizer, paragraphs, loaded.args.canvas_length)[:HELD_OUT_EVAL]
    counts = read_token_counts(resolve_checkpoint(model))
    if counts is None:
        print("(no token_counts.json beside the model: the baseline uses the held-out canvases' own frequencies)")
    rows = reconstruction_accuracy(loaded.model, examples, loaded.generation, counts, seed=seed)
    print(format_accuracy(rows, len(examples)))
    print()
    print(format_samples(sample_redrafts(loaded, paragraphs, seed)))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from training.corpus import held_out_sample

    picked = held_out_sample(_documents(args), FIXTURE_PARAGRAPHS)
    Path(args.export_held_out).write_text("\n\n".join(picked) + "\n", encoding="utf-8")
    _log(f"wrote {len(picked)} held-out paragraphs to {args.export_held_out}")
    return EXIT_OK


def _documents(args: argparse.Namespace):
    """The corpus' documents: from the installed packages, or python-docs from --corpus-dir."""
    from training.corpus import corpus_dir, load_corpus, load_documents

    if args.corpus_dir:
        return load_documents(corpus_dir(args.corpus, Path(args.corpus_dir)))
    return load_corpus(args.corpus)


def _write_licences(licences: str, out: Path) -> None:
    """The licences of the documentation the weights were trained on, beside them (LICENSES.txt)."""
    for stale in out.glob("LICENSE*"):
        stale.unlink()
    (out / "LICENSES.txt").write_text(licences, encoding="utf-8")


def _packed(args: argparse.Namespace):
    """The --corpus-file's contents (training.corpus_file), or None to read the installed packages."""
    if not args.corpus_file:
        return None
    from training.corpus_file import read_corpus_file

    packed = read_corpus_file(Path(args.corpus_file))
    if packed.corpus != args.corpus:
        raise UsageError(f"{args.corpus_file} packs the corpus {packed.corpus}, not {args.corpus}")
    return packed


def _export_corpus(args: argparse.Namespace) -> int:
    from training.corpus_file import pack, write_corpus_file

    packed = pack(args.corpus)
    write_corpus_file(packed, Path(args.export_corpus))
    size = Path(args.export_corpus).stat().st_size / 1e6
    _log(f"wrote {len(packed.documents)} documents of {args.corpus} and {len(packed.word_list.words):,} words to "
         f"{args.export_corpus} ({size:.1f} MB)")
    return EXIT_OK


def _train_args(args: argparse.Namespace, steps: int, batch_size: int, lr: float, encoder_loss_weight: float):
    from training.train import TrainArgs

    try:
        return TrainArgs(
            steps=_int("--steps", args.steps) if args.steps else steps,
            batch_size=_int("--batch-size", args.batch_size) if args.batch_size else batch_size,
            lr=float(args.lr) if args.lr else lr,
            self_cond_prob=float(args.self_cond_prob),
            encoder_loss_weight=float(args.encoder_loss_weight) if args.encoder_loss_weight else encoder_loss_weight,
            seed=_int("--seed", args.seed),
            time_budget_s=float(args.minutes) * 60 if getattr(args, "minutes", None) else None,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def _device(args: argparse.Namespace) -> str:
    import torch

    if args.device not in (None, "cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _int(flag: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{flag} must be an integer, got {value!r}") from error


def _size_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file()) / 1e6


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redraft train", description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


if __name__ == "__main__":  # `python -m redraft.train`: training alone, without the server's imports (a GPU image)
    parser = argparse.ArgumentParser(prog="python -m redraft.train", description="train or evaluate the small model")
    add_train_arguments(parser)
    sys.exit(run_train(parser.parse_args()))
