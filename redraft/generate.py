"""`redraft generate`: one generation from the command line, with the native or the reference backend.

Importing this module is cheap (no torch): the server adds these arguments to its own parser.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.model.config import DEFAULT_MODEL, KERNEL_MODES, QUANTIZE_FORMATS
from redraft.flags import env_flag, env_value

BACKENDS = ("native", "reference")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16")
RNGS = ("native", "reference")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad flags or inputs: reported on stderr with exit status 2."""


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The `generate` flags; each also reads REDRAFT_<FLAG> from the environment."""
    parser.add_argument(
        "--model",
        default=env_value("model", DEFAULT_MODEL),
        help=f"{DEFAULT_MODEL} (default), tiny, diffusiongemma-26b-a4b, or a checkpoint dir",
    )
    parser.add_argument("--backend", default=env_value("backend", "native"), help="native (default) or reference")
    parser.add_argument(
        "--quantize", default=env_value("quantize", "none"), help=f"weights: {', '.join(QUANTIZE_FORMATS)} (native backend)"
    )
    parser.add_argument("--kernels", default=env_value("kernels", "off"), help="on: the fused Triton kernels (CUDA)")
    parser.add_argument("--prompt", default=env_value("prompt"), help="prompt text (tokenized as is, or as a chat turn)")
    parser.add_argument("--chat", action="store_true", default=env_flag("chat"), help="--prompt as a chat turn")
    parser.add_argument("--prompt-ids", default=env_value("prompt_ids"), help="comma-separated prompt token ids")
    parser.add_argument("--max-new-tokens", default=env_value("max_new_tokens"), help="default: the checkpoint's (256)")
    parser.add_argument("--steps", default=env_value("steps"), help="max denoising steps per canvas (default 48)")
    parser.add_argument("--seed", default=env_value("seed", "0"))
    parser.add_argument("--device", default=env_value("device"), help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default=env_value("dtype"), help="float32 or bfloat16 (default: bfloat16 on cuda)")
    parser.add_argument(
        "--rng", default=env_value("rng", "native"), help="native, or reference: draw random numbers as transformers does"
    )
    parser.add_argument("--json", action="store_true", default=env_flag("json"), help="print one JSON object")


def run_generate(args: argparse.Namespace) -> int:
    try:
        options = _validate(args)
    except UsageError as error:
        print(f"redraft generate: {error}", file=sys.stderr)
        return EXIT_USAGE
    from engine.runtime.generate import RequestError

    try:
        return _run(options)
    except (UsageError, RequestError) as error:
        print(f"redraft generate: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, RuntimeError) as error:
        print(f"redraft generate: {error}", file=sys.stderr)
        return EXIT_FAILED


def _run(options: dict) -> int:
    import torch

    from engine.runtime.generate import Request, generate
    from engine.runtime.ops import enable as enable_kernels
    from engine.runtime.reference import load_reference, reference_generate
    from engine.weights.checkpoint import load_model

    device = options["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    dtype = getattr(torch, options["dtype"] or ("bfloat16" if device == "cuda" else "float32"))
    started = time.perf_counter()
    if (options["quantize"], options["kernels"]) != ("none", "off") and options["backend"] != "native":
        raise UsageError("--quantize and --kernels apply to the native backend only")
    if options["backend"] == "native":
        loaded = load_model(options["model"], device, dtype, quantize=options["quantize"])
        enable_kernels(loaded.model, device, options["kernels"])
    else:
        loaded = load_reference(options["model"], device, dtype)
    load_s = time.perf_counter() - started
    prompt_ids = options["prompt_ids"] or _tokenize(loaded.tokenizer, options["prompt"], options["chat"])
    generation = loaded.generation.replace(
        max_new_tokens=options["max_new_tokens"], max_denoising_steps=options["steps"]
    )
    _sync(device)
    started = time.perf_counter()
    if options["backend"] == "native":
        result = generate(loaded.model, [Request(prompt_ids, seed=options["seed"])], generation, rng=options["rng"])[0]
        token_ids, steps = result.token_ids, result.steps
    else:
        token_ids, steps = reference_generate(loaded, prompt_ids, generation, options["seed"])
    _sync(device)
    elapsed_s = time.perf_counter() - started
    text = loaded.tokenizer.decode(token_ids, skip_special_tokens=True) if loaded.tokenizer is not None else ""
    if options["json"]:
        report = {
            "token_ids": token_ids,
            "text": text,
            "steps": steps,
            "elapsed_s": elapsed_s,
            "load_s": load_s,
            "prompt_tokens": len(prompt_ids),
            "backend": options["backend"],
            "model": options["model"],
            "seed": options["seed"],
            "rng": "reference" if options["backend"] == "reference" else options["rng"],
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
        }
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(text)
        print(f"[{len(token_ids)} tokens, steps per canvas {steps}, {elapsed_s:.2f} s]", file=sys.stderr)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> dict:
    """Checks the flags (env defaults bypass argparse's own checks) into plain values."""
    for name, allowed in (
        ("backend", BACKENDS), ("rng", RNGS), ("device", DEVICES), ("dtype", DTYPES), ("quantize", QUANTIZE_FORMATS),
        ("kernels", KERNEL_MODES)
    ):
        value = getattr(args, name)
        if value is not None and value not in allowed:
            raise UsageError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")
    if (args.prompt is None) == (args.prompt_ids is None):
        raise UsageError("give exactly one of --prompt and --prompt-ids")
    if args.chat and args.prompt is None:
        raise UsageError("--chat applies to --prompt only")
    prompt_ids = None
    if args.prompt_ids is not None:
        try:
            prompt_ids = [int(part) for part in args.prompt_ids.split(",") if part.strip()]
        except ValueError as error:
            raise UsageError(f"--prompt-ids must be comma-separated integers, got {args.prompt_ids!r}") from error
        if not prompt_ids:
            raise UsageError("--prompt-ids is empty")
    return {
        "model": args.model,
        "backend": args.backend,
        "prompt": args.prompt,
        "chat": args.chat,
        "prompt_ids": prompt_ids,
        "max_new_tokens": _positive_int("--max-new-tokens", args.max_new_tokens),
        "steps": _positive_int("--steps", args.steps),
        "seed": _seed(args.seed),
        "device": args.device,
        "dtype": args.dtype,
        "rng": args.rng,
        "json": args.json,
        "quantize": args.quantize,
        "kernels": args.kernels,
    }


def _tokenize(tokenizer, prompt: str, chat: bool) -> list[int]:
    if tokenizer is None:
        raise UsageError("this model has no tokenizer: use --prompt-ids")
    if chat:
        from engine.text.prompts import encode_messages

        return encode_messages(tokenizer, [{"role": "user", "content": prompt}])
    return tokenizer.encode(prompt)


def _positive_int(flag: str, value) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as error:
        raise UsageError(f"{flag} must be a positive integer, got {value!r}") from error
    if number <= 0:
        raise UsageError(f"{flag} must be a positive integer, got {value!r}")
    return number


def _seed(value) -> int:
    try:
        seed = int(value)
    except ValueError as error:
        raise UsageError(f"--seed must be an integer, got {value!r}") from error
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be in [0, 2**63), got {seed}")
    return seed


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redraft generate", description=__doc__.splitlines()[0])
    add_generate_arguments(parser)
    return run_generate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
