"""The sampler's pure functions against transformers' own sampler classes: exact equality, same inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers.generation import LogitsProcessorList
from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
    DiffusionGemmaGenerationMixin,
    EntropyBoundSampler,
    EntropyBoundSamplerConfig,
    LinearTemperatureScheduleLogitsProcessor,
    StableAndConfidentStoppingCriteria,
)

from engine.model.config import GenerationArgs
from engine.model.ops import REFERENCE_OPS
from engine.runtime.generate import denoise_step, new_state, start_canvases
from engine.runtime.noise import ReferenceNoise
from engine.runtime.sampler import accept_mask, next_canvas, pad_after_eos, stop_test, temperature, token_entropy

VOCAB, CANVAS = 50, 12


def random_logits(seed: int, batch: int = 3, sharpness: float = 4.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return sharpness * torch.randn(batch, CANVAS, VOCAB, generator=generator)


def test_temperature_schedule_is_bit_identical_for_every_step_and_budget():
    for num_steps in range(1, 65):
        processor = LinearTemperatureScheduleLogitsProcessor(t_min=0.4, t_max=0.8, max_denoising_steps=num_steps)
        logits = random_logits(num_steps, batch=1)
        for cur_step in range(num_steps, 0, -1):
            expected = processor(None, logits, cur_step=torch.tensor(cur_step, dtype=torch.int32))
            temp = temperature(torch.tensor([cur_step]), torch.tensor([num_steps]), 0.4, 0.8)
            assert torch.equal(logits / temp[:, None, None], expected), (num_steps, cur_step)


def test_entropy_is_bit_identical_to_categorical():
    for seed, sharpness in ((0, 0.1), (1, 4.0), (2, 60.0)):
        logits = random_logits(seed, sharpness=sharpness)
        logits[0, 0, 3] = 1e4  # a one-hot row: log-probs of -inf clamp to finfo.min
        expected = torch.distributions.Categorical(logits=logits).entropy()
        assert torch.equal(token_entropy(logits), expected)


@pytest.mark.parametrize("bound", [0.1, 0.5, 3.0])
def test_accepted_positions_and_next_canvas_match_the_reference_sampler(bound):
    for seed in range(5):
        logits = random_logits(seed, sharpness=2.0 + 3 * seed)
        canvas = torch.randint(0, VOCAB, (3, CANVAS), generator=torch.Generator().manual_seed(seed))
        samples = torch.randint(0, VOCAB, (3, CANVAS), generator=torch.Generator().manual_seed(seed + 100))
        sampler = EntropyBoundSampler(EntropyBoundSamplerConfig(entropy_bound=bound), CANVAS, VOCAB, 8)
        accepted_canvas = sampler.accept_canvas(canvas, samples, logits, cur_step=1)
        torch.manual_seed(seed)  # renoise draws its uniform tokens from the global generator
        expected_next = sampler.renoise_canvas(accepted_canvas, cur_step=1)
        torch.manual_seed(seed)
        noise = torch.randint(0, VOCAB, (3, CANVAS))

        accepted = accept_mask(token_entropy(logits), bound)
        assert torch.equal(accepted, sampler.accepted_token_mask)
        assert torch.equal(next_canvas(canvas, samples, accepted, noise), expected_next)


def test_acceptance_takes_the_lowest_entropy_prefix_within_the_bound():
    entropy = torch.tensor([[0.5, 0.02, 0.3, 0.05, 0.04], [2.0, 3.0, 1.5, 4.0, 2.5]])
    # row 0 sorted: 0.02, 0.04, 0.05, 0.3, 0.5 -> sums before each: 0, .02, .06, .11 -> first three
    # row 1: nothing is confident, the lowest-entropy position is still accepted
    assert accept_mask(entropy, 0.1).tolist() == [
        [False, True, False, True, True],
        [False, False, True, False, False],
    ]


@pytest.mark.parametrize("stability", [0, 1, 2])
def test_stopping_step_matches_stable_and_confident_criteria(stability):
    # rows converge at different steps: row 0 early, row 1 later, row 2 never confident
    criteria = StableAndConfidentStoppingCriteria(stability_threshold=stability, confidence_threshold=0.005)
    history = torch.full((stability, 3, CANVAS), -1, dtype=torch.long)
    generator = torch.Generator().manual_seed(stability)
    for step in range(8):
        logits = torch.randn(3, CANVAS, VOCAB, generator=generator)
        logits[0, :, 7] += 40.0 if step >= 2 else 0.0
        logits[1, :, 9] += 40.0 if step >= 4 else 0.0
        argmax = logits.argmax(-1)
        expected = criteria(argmax, logits)
        stop, history = stop_test(history, argmax, token_entropy(logits), 0.005)
        assert torch.equal(stop, expected), step
    assert stop.tolist() == [True, True, False]


def test_tokens_after_the_first_eos_become_pad():
    tokens = torch.tensor([[5, 1, 7, 1, 8], [5, 6, 7, 8, 9], [106, 4, 4, 4, 4], [3, 3, 3, 3, 50]])
    padded, has_eos = pad_after_eos(tokens, torch.tensor([1, 106, 50]), pad_id=0)
    assert padded.tolist() == [[5, 1, 0, 0, 0], [5, 6, 7, 8, 9], [106, 0, 0, 0, 0], [3, 3, 3, 3, 50]]
    assert has_eos.tolist() == [True, False, True, True]


class ScriptedDecoder:
    """Stands in for the model on both sides: logits sharpen towards a fixed target as steps go by, and
    depend on the canvas and on the self-conditioning logits, so that every input the sampler feeds back
    matters."""

    dtype = torch.float32
    ops = REFERENCE_OPS  # the reference sampler step runs

    def __init__(self, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.target = torch.randint(0, VOCAB, (1, CANVAS), generator=generator)
        self.noise = [torch.randn(1, CANVAS, VOCAB, generator=generator) for _ in range(16)]
        self.calls = 0

    def logits(self, canvas, self_cond):
        sharpness = 2.5 * self.calls
        logits = self.noise[self.calls] + sharpness * F.one_hot(self.target, VOCAB) + 1.5 * F.one_hot(canvas, VOCAB)
        if self_cond is not None:
            logits = logits + 0.1 * self_cond
        self.calls += 1
        return logits

    def decode(self, canvas, positions, cache, self_cond_logits, self_cond_mask, kv_len=None, masks=None):
        return self.logits(canvas, self_cond_logits if bool(self_cond_mask[0]) else None)

    def reference_forward(self, decoder_input_ids, self_conditioning_logits, **unused):
        return SimpleNamespace(logits=self.logits(decoder_input_ids, self_conditioning_logits))


@pytest.mark.parametrize("seed", range(4))
def test_denoising_steps_match_transformers_for_the_same_logits_and_draws(seed):
    steps, generation = 12, GenerationArgs(max_denoising_steps=12)
    # transformers' step, run on the scripted decoder with its global generator seeded
    reference_decoder = ScriptedDecoder(seed)
    owner = SimpleNamespace(
        config=SimpleNamespace(text_config=SimpleNamespace(vocab_size=VOCAB)),
        model=SimpleNamespace(decoder=SimpleNamespace(embed_tokens=SimpleNamespace(weight=torch.empty(0)))),
    )
    sampler = EntropyBoundSampler(EntropyBoundSamplerConfig(entropy_bound=0.1), CANVAS, VOCAB, steps)
    processors = LogitsProcessorList([LinearTemperatureScheduleLogitsProcessor(0.4, 0.8, steps)])
    criteria = StableAndConfidentStoppingCriteria(stability_threshold=1, confidence_threshold=0.005)
    torch.manual_seed(seed)
    canvas = sampler.initialize_canvas(1, torch.device("cpu"))
    argmax, self_cond, finished = canvas, None, torch.zeros(1, dtype=torch.bool)
    expected = []
    for cur_step in range(steps, 0, -1):
        canvas, argmax, self_cond, finished = DiffusionGemmaGenerationMixin._denoising_step(
            owner, reference_decoder.reference_forward, canvas, argmax, None, None, self_cond, None, None,
            finished, cur_step, sampler, processors, criteria,
        )
        expected.append((canvas.clone(), argmax.clone(), sampler.accepted_token_mask.clone(), bool(finished)))
        if finished.all():
            break

    # ours, with the reference draws
    decoder = ScriptedDecoder(seed)
    noise = ReferenceNoise([seed], VOCAB, CANVAS, torch.device("cpu"))
    state = new_state(generation, 1, CANVAS, [steps], VOCAB, torch.device("cpu"), torch.float32)
    start_canvases(state, noise, [0], [7], torch.device("cpu"), first=True)
    ours = []
    while True:
        stopped = denoise_step(decoder, None, state, noise, generation, None, 0, [True])
        ours.append((state.canvas.clone(), state.argmax.clone(), state.accepted.clone(), bool(stopped[0])))
        if stopped[0]:
            break

    assert len(ours) == len(expected) < steps  # it stops early, at the same step
    for step, (mine, theirs) in enumerate(zip(ours, expected, strict=False)):
        for name, a, b in zip(("canvas", "argmax", "accepted", "stopped"), mine, theirs, strict=False):
            assert (a == b) if isinstance(a, bool) else torch.equal(a, b), (step, name)
