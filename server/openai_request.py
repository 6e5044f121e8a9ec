"""Request bodies of the OpenAI-compatible API, checked field by field and turned into an engine spec.

The spec is engine/runtime/redrafts.py's `chat` or `complete` kind. Every field a client may send is checked and a
bad one is named in the error (OpenAI's `param`); fields this API does not know are ignored, as OpenAI's own
clients send some that servers skip (`user`, `metadata`, ...). Sampling knobs that mean nothing to a
diffusion sampler are accepted when well-formed and then ignored, each said below; a feature that would
change the answer's meaning and that the engine cannot give (logprobs, several choices, echo) is refused
rather than silently dropped. Two extensions, which stock clients never send: `redraft_snapshots` (true:
the denoising snapshots ride on extra stream chunks) and `redraft_steps` (denoising steps per canvas, 1-256,
as the editor's quality setting; another Redraft's `--engine openai` sends it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.spec import CHAT_ROLES, MAX_STEPS, MAX_STOP_CHARS, MAX_STOPS

DEVELOPER = "developer"  # OpenAI's newer name for the system role; the chat template knows only "system"
MAX_SEED = 2**63


class BadRequest(ValueError):
    """A field the API cannot take: HTTP 400 with `param` naming it."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ApiRequest:
    model: str
    spec: dict  # an engine spec without its id: kind, messages or prompt, max_tokens, stop, seed
    is_stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the usage
    wants_snapshots: bool  # the `redraft_snapshots` extension: denoising snapshots ride on extra chunks


def parse_chat(body, max_context: int | None) -> ApiRequest:
    """A /v1/chat/completions body; max_context (prompt + output tokens), when the engine tells it, bounds
    max_tokens here, else the engine refuses what does not fit."""
    body = _object(body)
    _check_common(body)
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise BadRequest("logprobs are not supported by this engine", "logprobs")
    max_tokens = _max_tokens(body, "max_tokens", max_context)
    max_completion_tokens = _max_tokens(body, "max_completion_tokens", max_context)
    if None not in (max_tokens, max_completion_tokens) and max_tokens != max_completion_tokens:
        raise BadRequest("max_tokens and max_completion_tokens differ; send one", "max_completion_tokens")
    spec = {"kind": "chat", "messages": _messages(body.get("messages"))}
    return _request(body, spec, max_completion_tokens or max_tokens)


def parse_completion(body, max_context: int | None) -> ApiRequest:
    """A /v1/completions body (see parse_chat)."""
    body = _object(body)
    _check_common(body)
    if body.get("logprobs") is not None:
        raise BadRequest("logprobs are not supported by this engine", "logprobs")
    if body.get("echo") not in (None, False):
        raise BadRequest("echo is not supported: the prompt is not repeated in the answer", "echo")
    if body.get("suffix") not in (None, ""):
        raise BadRequest("suffix is not supported", "suffix")
    if body.get("best_of") not in (None, 1):
        raise BadRequest("best_of must be 1: the engine writes one completion per request", "best_of")
    spec = {"kind": "complete", "prompt": _prompt(body.get("prompt"))}
    return _request(body, spec, _max_tokens(body, "max_tokens", max_context))


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _check_common(body: dict) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: the id /v1/models lists", "model")
    if body.get("n") not in (None, 1):
        raise BadRequest("n must be 1: the engine writes one choice per request", "n")
    # Accepted and ignored: the denoising sampler anneals its own temperature over the steps (the checkpoint's
    # t_max to t_min) and has no nucleus or repetition penalties; sending them is not an error.
    for name, low, high in (
        ("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0), ("presence_penalty", -2.0, 2.0),
        ("frequency_penalty", -2.0, 2.0),
    ):
        value = body.get(name)
        if value is not None and not (_is_number(value) and low <= value <= high):
            raise BadRequest(f"{name} must be a number from {low:g} to {high:g}, not {value!r}", name)
    if body.get("logit_bias") not in (None, {}):
        raise BadRequest("logit_bias is not supported by this engine", "logit_bias")
    for name in ("stream", "redraft_snapshots"):
        if body.get(name) not in (None, True, False):
            raise BadRequest(f"{name} must be true or false, not {body[name]!r}", name)


def _request(body: dict, spec: dict, max_tokens: int | None) -> ApiRequest:
    is_stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not is_stream:
            raise BadRequest("stream_options is only allowed when stream is true", "stream_options")
        if not isinstance(options, dict) or options.get("include_usage") not in (None, True, False):
            raise BadRequest("stream_options must be an object whose include_usage is true or false", "stream_options")
        include_usage = options.get("include_usage") is True
    seed = body.get("seed")
    if seed is not None and not (_is_int(seed) and -MAX_SEED <= seed < MAX_SEED):
        raise BadRequest(f"seed must be a 64-bit integer, not {seed!r}", "seed")
    spec = {**spec, "max_tokens": max_tokens, "stop": _stop(body.get("stop"))}
    if seed is not None:
        spec["seed"] = seed
    steps = body.get("redraft_steps")
    if steps is not None:
        if not (_is_int(steps) and 1 <= steps <= MAX_STEPS):
            raise BadRequest(f"redraft_steps must be an integer from 1 to {MAX_STEPS}, not {steps!r}", "redraft_steps")
        spec["steps"] = steps
    return ApiRequest(body["model"], spec, is_stream, include_usage, body.get("redraft_snapshots") is True)


def _max_tokens(body: dict, name: str, max_context: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise BadRequest(f"{name} must be an integer of at least 1, not {value!r}", name)
    if max_context is not None and value >= max_context:
        raise BadRequest(
            f"{name} is {value}, but this model's context is {max_context} tokens, the prompt included", name
        )
    return value


def _messages(messages) -> list[dict]:
    """[{role, content}] with content as text: a list of text parts is joined; other parts are refused."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object with role and content", where)
        role = message.get("role")
        if role == DEVELOPER:
            role = "system"
        if role not in CHAT_ROLES:
            raise BadRequest(f"{where}.role must be one of system, developer, user, assistant, not {role!r}",
                             f"{where}.role")
        out.append({"role": role, "content": _content(message.get("content"), f"{where}.content")})
    return out


def _content(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be text or a list of text parts", where)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}[{j}] must be a text part ({{\"type\": \"text\", \"text\": ...}}): this model "
                             "reads text only", f"{where}[{j}]")
        texts.append(part["text"])
    return "".join(texts)


def _prompt(prompt) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]  # the client's list form of one prompt
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be text (one prompt per request; token ids are not accepted)", "prompt")
    return prompt


def _stop(stop) -> list[str] | None:
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise BadRequest(f"stop must be a string or a list of at most {MAX_STOPS} strings", "stop")
    if not all(isinstance(text, str) and text for text in stops):
        raise BadRequest("each stop string must be non-empty text", "stop")
    if any(len(text) > MAX_STOP_CHARS for text in stops):
        raise BadRequest(f"each stop string must be at most {MAX_STOP_CHARS} characters", "stop")
    return stops or None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)
