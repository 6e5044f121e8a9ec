"""Generation: prefill, denoising steps and canvas commits for a batch of requests in lockstep.

Each row of the batch is one request with its own seed, step budget and length; rows are independent, so a
request's tokens do not depend on its batch mates. A row that finishes denoising a canvas commits it (one
encoder pass over that row) and starts its next canvas at once, while the other rows keep denoising.

`denoise_step` is the unit a CUDA graph wraps: fixed shapes ([B, L] canvases, [B, L, V] logits, a fixed
kv_len and precomputed masks) and no host sync. The loop syncs once per step, for the stop test.

A canvas starts from uniform noise (DiffusionGemma's sampler), or, for a request with `init_ids`, from given
tokens: a model trained to edit a passage in place starts from the passage itself (jobs/tasks.py,
"canvas_init"), and where a step does not accept the model's sample such a canvas goes back to those tokens
instead of to fresh noise. Either way the start is written into the same [B, L] canvas between steps, so the
step's shapes, and a captured graph, do not change.

A request with `choices` (engine/text/slots.py: a fix's possible slips and what each may have been) edits
only there: those slots start from noise and are denoised in the passage's context like a masked word, and
the canvas commits the passage with, in each slot, the option the model's last step scores highest with its
prior (`choose`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import torch

from engine.errors import ContextTooLongError, RequestError
from engine.model.cache import AttentionMask, KVCache, decoder_masks
from engine.model.config import GenerationArgs
from engine.model.network import DiffusionGemma
from engine.runtime.noise import CounterNoise, Noise, make_noise
from engine.runtime.sampler import (
    accept_mask,
    apply_temperature,
    next_canvas,
    pad_after_eos,
    stop_test,
    temperature,
    token_entropy,
)
from engine.text.slots import SlotChoice
from jobs.cancel import Cancellation


@dataclass(frozen=True)
class Request:
    prompt_ids: list[int]
    seed: int = 0
    max_new_tokens: int | None = None  # default: GenerationArgs.max_new_tokens
    max_denoising_steps: int | None = None  # default: GenerationArgs.max_denoising_steps
    cancellation: Cancellation | None = None  # jobs/cancel.py's flag, read between steps
    # Where the canvases start: canvas k from init_ids[k*L:(k+1)*L] (padded with the model's pad id), a canvas
    # past their end from noise as without them. None: every canvas from noise.
    init_ids: list[int] | None = None
    # With init_ids: the only slots the canvas may change, and what each may become (None: any position)
    choices: tuple[SlotChoice, ...] | None = None


@dataclass(frozen=True)
class Snapshot:
    """The batch after one denoising step. Per row: passes so far on its current canvas and the budget, the
    argmax canvas (what it would commit now), per-position entropy and acceptance of this step."""

    step: list[int]
    max_steps: list[int]
    canvas_index: list[int]
    canvas: torch.Tensor  # [B, L] int64, cpu
    entropy: torch.Tensor  # [B, L] fp32, cpu
    accepted: torch.Tensor  # [B, L] bool, cpu
    stopped: list[bool]  # this step ended the row's canvas (stable and confident, or out of steps)
    finished: list[bool]  # the request is done


@dataclass
class Result:
    token_ids: list[int] = field(default_factory=list)  # all committed canvases, pad after EOS
    steps: list[int] = field(default_factory=list)  # decoder passes per canvas
    status: str = "running"  # then "done" or "cancelled"


@dataclass
class BatchState:
    """Per-row denoising state, all on the device."""

    canvas: torch.Tensor  # [B, L] the noisy canvas fed to the decoder
    argmax: torch.Tensor  # [B, L]
    # [B, L, V] weight dtype: the previous step's processed logits, or with the fused sampling head their softmax
    self_cond: torch.Tensor
    self_cond_mask: torch.Tensor  # [B] bool, False on a canvas' first step
    history: torch.Tensor  # [stability_threshold, B, L] argmax canvases of the last steps
    positions: torch.Tensor  # [B, L] RoPE positions of the canvas
    cur_step: torch.Tensor  # [B] int32, steps remaining (N..1), transformers' cur_step
    num_steps: torch.Tensor  # [B] int32, the budget N
    steps_done: torch.Tensor  # [B] int64, decoder passes on the current canvas
    canvas_index: torch.Tensor  # [B] int64
    running: torch.Tensor  # [B] bool, denoising this step
    entropy: torch.Tensor  # [B, L] fp32, of the latest step
    accepted: torch.Tensor  # [B, L] bool, of the latest step
    # A canvas started from given tokens (init_ids) goes back to them, not to noise, where a step does not
    # accept the model's sample: the undecided part of an edit shows the passage as it stands
    start: torch.Tensor  # [B, L] the canvas' given start tokens (positions with from_start)
    from_start: torch.Tensor  # [B, L] bool: False where the canvas starts from noise (a choice's slots too)
    only_choices: torch.Tensor  # [B] bool: the row's request has choices, so it changes nothing outside them


def denoise_step(
    model: DiffusionGemma,
    cache: KVCache,
    state: BatchState,
    noise: Noise,
    generation: GenerationArgs,
    masks: dict[str, AttentionMask],
    kv_len: int,
    active: list[bool],
) -> torch.Tensor:
    """One decoder pass + sampler step for every running row (state.running); other rows keep their state.

    Rebinds the state's fields to new tensors, or with the kernels writes them in place: a CUDA graph around it
    copies them back into its static buffers (a copy onto itself is skipped). masks and kv_len stay fixed
    until the next commit. active: state.running on the host, which only the reference noise needs (it draws
    per row). Returns the rows that stopped this step, [B] bool."""
    temp = temperature(state.cur_step, state.num_steps, generation.t_min, generation.t_max)  # [B]
    # The fused head draws from the native noise's uniforms; transformers' draws (reference noise) go through
    # torch.multinomial over the whole softmax, so they keep the reference path
    ops = model.ops  # engine/model/ops.py: the step's head, draws and sampler step when the kernels are on
    if fused_head(model, noise):
        # both of the step's draws at once: one launch with kernels/noise.py
        uniforms, renoise = noise.draws(state.canvas_index, state.steps_done, ops.noise)
        samples, argmax, entropy, self_cond = _fused_head(model, cache, state, masks, kv_len, temp, uniforms)
    else:
        logits = model.decode(
            state.canvas, state.positions, cache, state.self_cond, state.self_cond_mask, kv_len=kv_len, masks=masks
        )  # [B, L, V] fp32
        processed = apply_temperature(logits, temp)
        samples = noise.samples(processed, active, state.canvas_index, state.steps_done)
        argmax = torch.argmax(processed, dim=-1)
        entropy = token_entropy(processed)
        self_cond = processed.to(model.dtype)
        renoise = noise.renoise(active, state.canvas_index, state.steps_done)
    # Every row takes it, running or not: a row reads it only while it runs, and a canvas starts with
    # self_cond_mask False. That spares a [B, L, V] select per step.
    state.self_cond = self_cond
    renoise = torch.where(state.from_start, state.start, renoise)
    # kernels/sampler.py: the rest in one launch, the state in place
    sampler_step = ops.advance if ops.advance is not None else advance
    return sampler_step(state, samples, argmax, entropy, renoise, generation)


def fused_head(model: DiffusionGemma, noise: Noise) -> bool:
    """Whether a step ends in kernels/head.py, which leaves the softmax in state.self_cond (else the processed
    logits)."""
    return isinstance(noise, CounterNoise) and model.ops.head is not None


def advance(state: BatchState, samples, argmax, entropy, renoise, generation: GenerationArgs) -> torch.Tensor:
    """The sampler's step after the head, for the running rows: acceptance under the entropy bound, the next
    canvas, the stop test, and the state moved on. Returns the rows that stopped, [B] bool."""
    accepted = accept_mask(entropy, generation.entropy_bound)
    canvas = next_canvas(state.canvas, samples, accepted, renoise)
    stop, history = stop_test(state.history, argmax, entropy, generation.confidence_threshold)

    run = state.running
    state.canvas = torch.where(run[:, None], canvas, state.canvas)
    state.argmax = torch.where(run[:, None], argmax, state.argmax)
    state.entropy = torch.where(run[:, None], entropy, state.entropy)
    state.accepted = torch.where(run[:, None], accepted, state.accepted)
    state.history = torch.where(run[None, :, None], history, state.history)
    state.self_cond_mask = state.self_cond_mask | run
    state.steps_done = state.steps_done + run.long()
    state.cur_step = state.cur_step - run.int()
    stopped = run & (stop | (state.cur_step == 0))
    state.running = run & ~stopped
    return stopped


def _fused_head(model: DiffusionGemma, cache, state: BatchState, masks, kv_len: int, temp, uniforms: torch.Tensor):
    """The decoder pass ending in kernels/head.py: the reference path's draws from the same uniforms ([B, L], the
    native noise's), with the next step's self-conditioning softmax in place of the logits."""
    hidden = model.decode(
        state.canvas, state.positions, cache, None, state.self_cond_mask, kv_len=kv_len, masks=masks,
        self_cond_probs=state.self_cond, return_hidden=True,
    )  # [B, L, D]
    rows, length = state.canvas.shape
    # the softmax goes over the one this pass read at its start: a CUDA graph's static buffer stays where it is
    head = model.ops.head(
        hidden.flatten(0, 1), model.embed_tokens.weight, temp.repeat_interleave(length),
        model.args.final_logit_softcap, uniforms.flatten(), out=state.self_cond.flatten(0, 1),
    )
    shape = (rows, length)
    probs = head.self_cond_probs.view(rows, length, -1)
    return head.sample.view(shape), head.argmax.view(shape), head.entropy.view(shape), probs


@torch.no_grad()
def generate_stream(
    model: DiffusionGemma,
    requests: list[Request],
    generation: GenerationArgs,
    rng: str = "native",
    cancel: Callable[[], bool] | None = None,
) -> Generator[Snapshot, None, list[Result]]:
    """Yields a Snapshot per denoising step; returns one Result per request (StopIteration.value)."""
    if not requests:
        return []
    args, device = model.args, model.embed_tokens.weight.device
    L = args.canvas_length
    budgets = [request_budget(request, generation, L, args.max_context, args.vocab_size) for request in requests]
    prompt_lens = [len(request.prompt_ids) for request in requests]
    # the last canvas is never committed: the cache holds the prompt and all canvases but one
    committed = [p + (canvases - 1) * L for p, (canvases, _) in zip(prompt_lens, budgets, strict=True)]
    max_len = max(*committed, *prompt_lens)
    cache = KVCache.allocate(args, len(requests), max_len, model.dtype, device)
    noise = make_noise(rng, [request.seed for request in requests], args.vocab_size, L, device)
    results = [Result() for _ in requests]
    lengths = prefill(model, cache, [request.prompt_ids for request in requests])
    steps = [steps for _, steps in budgets]
    state = new_state(generation, len(requests), L, steps, args.vocab_size, device, model.dtype)
    inits = [request.init_ids for request in requests]
    choices = [request.choices for request in requests]
    start_canvases(state, noise, list(range(len(requests))), lengths, device, first=True,
                   init_ids=inits, pad_id=args.pad_token_id, choices=choices)
    masks = decoder_masks(cache.lengths, max(lengths), L, args.sliding_window, min(lengths))
    while True:
        _poll_cancellations(requests, results, cancel)
        active = [result.status == "running" for result in results]
        if not any(active):
            return results
        state.running &= torch.tensor(active, device=device)
        stopped = denoise_step(model, cache, state, noise, generation, masks, max(lengths), active).tolist()
        ended = [row for row in range(len(requests)) if stopped[row]]
        to_commit, canvases = close_canvases(state, ended, results, budgets, generation, choices,
                                             fused_head(model, noise))
        yield _snapshot(state, budgets, stopped, [result.status != "running" for result in results])
        if to_commit:
            commit(model, cache, canvases, to_commit, lengths)
            start_canvases(state, noise, to_commit, lengths, device, init_ids=[inits[row] for row in to_commit],
                           pad_id=args.pad_token_id, choices=[choices[row] for row in to_commit])
            masks = decoder_masks(cache.lengths, max(lengths), L, args.sliding_window, min(lengths))


def _poll_cancellations(requests: list[Request], results: list[Result], cancel: Callable[[], bool] | None) -> None:
    cancel_all = cancel is not None and cancel()
    for request, result in zip(requests, results, strict=True):
        if result.status == "running" and (cancel_all or (request.cancellation is not None and request.cancellation.is_set)):
            result.status = "cancelled"


def close_canvases(
    state: BatchState,
    rows: list[int],
    results: list[Result],
    budgets: list[tuple[int, int]],
    generation: GenerationArgs,
    choices: Sequence[tuple[SlotChoice, ...] | None] = (),
    self_cond_probs: bool = False,
) -> tuple[list[int], torch.Tensor]:
    """Appends the finished canvases (`committed_edits`, pad after EOS) to their results. Returns the rows that
    go on to another canvas and those canvases [n, L], which the cache commits. An EOS anywhere in the canvas,
    or the last canvas, ends a request. choices: per row of the batch, its request's (or empty: none);
    self_cond_probs: `fused_head`."""
    if not rows:
        return [], state.argmax[:0]
    eos_ids = torch.tensor(generation.eos_token_ids, dtype=torch.long, device=state.argmax.device)
    pad_id = generation.pad_token_id
    row_choices = [choices[row] for row in rows] if choices else ()
    chosen = committed_edits(state, rows, generation.edit_entropy_bound, row_choices, self_cond_probs)
    tokens, has_eos = pad_after_eos(chosen, eos_ids, pad_id if pad_id is not None else 0)
    if pad_id is None:  # transformers still stops at EOS, but has nothing to pad with
        tokens = chosen
    to_commit = []
    for row, row_tokens, ended in zip(rows, tokens.tolist(), has_eos.tolist(), strict=True):
        result = results[row]
        result.token_ids += row_tokens
        result.steps.append(int(state.steps_done[row]))
        if ended or len(result.steps) == budgets[row][0]:
            result.status = "done"
        else:
            to_commit.append(row)
    continuing = [index for index, row in enumerate(rows) if row in to_commit]
    return to_commit, chosen[continuing]


def committed_edits(
    state: BatchState,
    rows: list[int],
    edit_entropy_bound: float | None,
    choices: Sequence[tuple[SlotChoice, ...] | None] = (),
    self_cond_probs: bool = False,
) -> torch.Tensor:
    """The canvases `rows` commit [n, L]: the argmax, except that
    - with edit_entropy_bound, a passage-started row keeps its passage's token wherever the model's last step
      was less sure than that (a small model's unsure guesses would otherwise replace good words);
    - a row whose request has choices (per row of `rows`, or empty: none) keeps its passage everywhere but in
      their slots, and there takes the option `choose` picks."""
    canvases = state.argmax[rows]
    if edit_entropy_bound is not None:
        unsure = state.from_start[rows] & (state.entropy[rows] > edit_entropy_bound)
        canvases = torch.where(unsure, state.start[rows], canvases)
    for index, (row, row_choices) in enumerate(zip(rows, choices)):
        if row_choices is not None:
            canvases[index] = choose(state, row, row_choices, self_cond_probs)
    return canvases


def choose(state: BatchState, row: int, choices: tuple[SlotChoice, ...], self_cond_probs: bool) -> torch.Tensor:
    """Row `row`'s passage canvas [L] with each choice of its current canvas decided: the option whose tokens
    the last step's distribution (state.self_cond: `fused_head`'s softmax, or processed logits) gives the
    highest log-probability, plus the option's prior."""
    canvas = state.start[row].clone()
    offset, here = _in_canvas(choices, int(state.canvas_index[row]), canvas.shape[0])
    if not here:
        return canvas
    scores = state.self_cond[row].float()
    log_probs = torch.log(scores.clamp_min(1e-30)) if self_cond_probs else torch.log_softmax(scores, dim=-1)
    for choice in here:
        slots = torch.arange(choice.start - offset, choice.start - offset + choice.length, device=canvas.device)
        options = torch.tensor(choice.options, dtype=torch.long, device=canvas.device)  # [n, length]
        scored = log_probs[slots].gather(1, options.T).sum(0) + torch.tensor(choice.priors, device=canvas.device)
        canvas[slots] = options[int(scored.argmax())]
    return canvas


def generate(
    model: DiffusionGemma,
    requests: list[Request],
    generation: GenerationArgs,
    rng: str = "native",
    cancel: Callable[[], bool] | None = None,
    on_step: Callable[[Snapshot], None] | None = None,
) -> list[Result]:
    """Runs generate_stream to the end."""
    stream = generate_stream(model, requests, generation, rng, cancel)
    while True:
        try:
            snapshot = next(stream)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(snapshot)


@torch.no_grad()
def prefill(model: DiffusionGemma, cache: KVCache, prompts: list[list[int]], rows: list[int] | None = None) -> list[int]:
    """Encodes right-padded prompts into cache `rows` (default 0..B-1; pad slots are masked and later
    overwritten). Returns the prompts' lengths, also written to cache.lengths."""
    device = cache.lengths.device
    lengths = [len(p) for p in prompts]
    tokens = torch.full((len(prompts), max(lengths)), model.args.pad_token_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
    positions = torch.arange(max(lengths), device=device).expand(len(prompts), -1)
    rows_t = None if rows is None else torch.tensor(rows, device=device)
    model.encode(tokens.to(device), positions, cache, rows=rows_t, kv_len=max(lengths))
    if rows_t is None:
        cache.lengths.copy_(torch.tensor(lengths, device=device))
    else:
        cache.lengths[rows_t] = torch.tensor(lengths, device=device)
    return lengths


@torch.no_grad()
def commit(model: DiffusionGemma, cache: KVCache, canvases: torch.Tensor, rows: list[int], lengths: list[int]) -> None:
    """Encodes finished canvases [n, L] into their cache rows after the committed tokens; updates lengths."""
    device = cache.lengths.device
    canvas_length = canvases.shape[1]
    starts = torch.tensor([lengths[row] for row in rows], device=device)
    positions = starts[:, None] + torch.arange(canvas_length, device=device)
    rows_t = torch.tensor(rows, device=device)
    model.encode(canvases, positions, cache, rows=rows_t, kv_len=max(lengths[row] for row in rows) + canvas_length)
    for row in rows:
        lengths[row] += canvas_length
    cache.lengths[rows_t] += canvas_length


def start_canvases(
    state: BatchState,
    noise: Noise,
    rows: list[int],
    lengths: list[int],
    device: torch.device,
    first: bool = False,
    init_ids: Sequence[list[int] | None] = (),
    pad_id: int = 0,
    choices: Sequence[tuple[SlotChoice, ...] | None] = (),
) -> None:
    """Fresh canvases for `rows`: step budget reset, no self-conditioning, empty stop history.

    Random ones, except where init_ids (per row of `rows`, or empty: none) gives the row's request tokens for
    its next canvas (`canvas_start`); there the slots of its choices (per row of `rows`, or empty: none) start
    from noise. Noise is drawn only for the rows that start from it, wholly or in part: the reference RNG then
    draws for each row exactly what it draws without init_ids."""
    rows_t = torch.tensor(rows, dtype=torch.long, device=device)
    if not first:
        state.canvas_index[rows_t] += 1
    given = _given_starts(state, rows, init_ids, pad_id)
    noisy = [row for row in rows if row not in given]
    state.from_start[rows_t] = False
    state.only_choices[rows_t] = False
    if len(noisy) == len(rows):
        state.canvas[rows_t] = noise.canvas(rows, state.canvas_index)
    else:
        if noisy:
            state.canvas[torch.tensor(noisy, dtype=torch.long, device=device)] = noise.canvas(noisy, state.canvas_index)
        given_t = torch.tensor(list(given), dtype=torch.long, device=device)
        state.start[given_t] = torch.tensor(list(given.values()), dtype=torch.long, device=device)
        state.canvas[given_t] = state.start[given_t]
        state.from_start[given_t] = True
        with_choices = [row for row, row_choices in zip(rows, choices) if row in given and row_choices is not None]
        if with_choices:
            state.only_choices[torch.tensor(with_choices, dtype=torch.long, device=device)] = True
        masked = _choice_slots(state, rows, choices)
        if masked:
            masked_rows = list(masked)
            masked_t = torch.tensor(masked_rows, dtype=torch.long, device=device)
            slots = torch.zeros(len(masked_rows), state.canvas.shape[1], dtype=torch.bool, device=device)
            for index, positions in enumerate(masked.values()):
                slots[index, positions] = True
            state.from_start[masked_t] = ~slots
            drawn = noise.canvas(masked_rows, state.canvas_index)
            state.canvas[masked_t] = torch.where(slots, drawn, state.start[masked_t])
    state.argmax[rows_t] = state.canvas[rows_t]
    starts = torch.tensor([lengths[row] for row in rows], device=device)
    state.positions[rows_t] = starts[:, None] + torch.arange(state.canvas.shape[1], device=device)
    state.self_cond_mask[rows_t] = False
    state.history[:, rows_t] = -1
    state.cur_step[rows_t] = state.num_steps[rows_t]
    state.steps_done[rows_t] = 0
    state.running[rows_t] = True


def _given_starts(
    state: BatchState, rows: list[int], init_ids: Sequence[list[int] | None], pad_id: int
) -> dict[int, list[int]]:
    """row -> the tokens its next canvas starts from, for the rows whose request gives them."""
    if not any(ids is not None for ids in init_ids):
        return {}  # no host read of the canvas indices: the common case stays as it was
    length = state.canvas.shape[1]
    indices = state.canvas_index[torch.tensor(rows, device=state.canvas_index.device)].tolist()
    given = {}
    for row, index, ids in zip(rows, indices, init_ids, strict=True):
        tokens = canvas_start(ids, index, length, pad_id)
        if tokens is not None:
            given[row] = tokens
    return given


def _choice_slots(state: BatchState, rows: list[int], choices: Sequence[tuple[SlotChoice, ...] | None]):
    """row -> the positions of its current canvas that its choices start from noise (rows that have some)."""
    masked: dict[int, list[int]] = {}
    if not any(choices):
        return masked
    indices = state.canvas_index[torch.tensor(rows, device=state.canvas_index.device)].tolist()
    for row, index, row_choices in zip(rows, indices, choices, strict=True):
        offset, here = _in_canvas(row_choices or (), index, state.canvas.shape[1])
        positions = [slot - offset for choice in here for slot in range(choice.start, choice.start + choice.length)]
        if positions:
            masked[row] = positions
    return masked


def _in_canvas(choices: tuple[SlotChoice, ...], index: int, length: int) -> tuple[int, list[SlotChoice]]:
    """(canvas `index`'s first slot, the choices whose slots lie within it)."""
    offset = index * length
    return offset, [c for c in choices if offset <= c.start and c.start + c.length <= offset + length]


def canvas_start(init_ids: list[int] | None, index: int, length: int, pad_id: int) -> list[int] | None:
    """Canvas `index`'s starting tokens from a request's init_ids: its slice, padded to `length`; None (noise)
    without init_ids or past their end."""
    if init_ids is None or index * length >= len(init_ids):
        return None
    tokens = init_ids[index * length : (index + 1) * length]
    return tokens + [pad_id] * (length - len(tokens))


def new_state(
    generation: GenerationArgs,
    num_rows: int,
    L: int,
    steps: list[int],
    vocab: int,
    device: torch.device,
    dtype: torch.dtype,
) -> BatchState:
    """Zeroed state for num_rows rows with their step budgets (start_canvases then fills each row); dtype: the
    model's, which the self-conditioning logits are kept in (as transformers keeps them)."""
    longs = torch.zeros(num_rows, L, dtype=torch.long, device=device)
    return BatchState(
        canvas=longs.clone(),
        argmax=longs.clone(),
        self_cond=torch.zeros(num_rows, L, vocab, dtype=dtype, device=device),
        self_cond_mask=torch.zeros(num_rows, dtype=torch.bool, device=device),
        history=torch.full((generation.stability_threshold, num_rows, L), -1, dtype=torch.long, device=device),
        positions=longs.clone(),
        cur_step=torch.tensor(steps, dtype=torch.int32, device=device),
        num_steps=torch.tensor(steps, dtype=torch.int32, device=device),
        steps_done=torch.zeros(num_rows, dtype=torch.long, device=device),
        canvas_index=torch.zeros(num_rows, dtype=torch.long, device=device),
        running=torch.zeros(num_rows, dtype=torch.bool, device=device),
        entropy=torch.zeros(num_rows, L, dtype=torch.float32, device=device),
        accepted=torch.zeros(num_rows, L, dtype=torch.bool, device=device),
        start=longs.clone(),
        from_start=torch.zeros(num_rows, L, dtype=torch.bool, device=device),
        only_choices=torch.zeros(num_rows, dtype=torch.bool, device=device),
    )


def request_budget(request: Request, generation: GenerationArgs, canvas_length: int, max_context: int, vocab_size: int):
    """(canvases, steps per canvas) for a request; rejects requests that cannot run."""
    max_new = generation.max_new_tokens if request.max_new_tokens is None else request.max_new_tokens
    steps = generation.max_denoising_steps if request.max_denoising_steps is None else request.max_denoising_steps
    if max_new <= 0 or steps <= 0:
        raise RequestError(f"max_new_tokens and max_denoising_steps must be positive, got {max_new} and {steps}")
    if not request.prompt_ids:
        raise RequestError("the prompt is empty: the encoder needs at least one token")
    if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab_size:
        raise RequestError(f"prompt ids must be in [0, {vocab_size})")
    if not 0 <= request.seed < 2**63:
        raise RequestError(f"seed must be in [0, 2**63), got {request.seed}")
    canvases = math.ceil(max_new / canvas_length)
    if request.init_ids is not None:
        _check_init_ids(request.init_ids, canvases * canvas_length, vocab_size)
    needed = len(request.prompt_ids) + canvases * canvas_length
    if needed > max_context:
        raise ContextTooLongError(
            f"prompt of {len(request.prompt_ids)} tokens + {canvases} canvas(es) of {canvas_length} = {needed} "
            f"tokens exceeds the model's context of {max_context}"
        )
    return canvases, steps


def _check_init_ids(init_ids, room: int, vocab_size: int) -> None:
    if not isinstance(init_ids, list) or not init_ids:
        raise RequestError("init_ids must be a non-empty list of token ids, or None")
    if not all(isinstance(token, int) and 0 <= token < vocab_size for token in init_ids):
        raise RequestError(f"init_ids must be in [0, {vocab_size})")
    if len(init_ids) > room:
        raise RequestError(f"init_ids has {len(init_ids)} tokens, more than the {room} of the requested canvases")


def preview(state: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
    """What a step shows of each row, canvas [B, L] and entropy [B, L]: the argmax and its entropy, except that
    a row with choices shows its passage outside their slots, settled, as it will commit it."""
    kept = state.only_choices[:, None] & state.from_start
    return torch.where(kept, state.start, state.argmax), torch.where(kept, 0.0, state.entropy)


def _snapshot(state: BatchState, budgets, stopped: list[bool], finished: list[bool]) -> Snapshot:
    canvas, entropy = preview(state)
    return Snapshot(
        step=state.steps_done.tolist(),
        max_steps=[steps for _, steps in budgets],
        canvas_index=state.canvas_index.tolist(),
        # copies, also on a CPU (where .cpu() is the tensor itself): the fused step writes the state in place
        canvas=canvas.to("cpu", copy=True),
        entropy=entropy.to("cpu", copy=True),
        accepted=state.accepted.to("cpu", copy=True),
        stopped=list(stopped),
        finished=list(finished),
    )
