"""Prompts to token ids, one rule for every backend with a Hugging Face tokenizer.

Overview: :func:`encode_prompt` turns what a user passes as a prompt (a string, chat
messages, token ids) into token ids with the tokenizer's own rules: a string with the
tokenizer's special tokens (e.g. BOS), messages through the chat template with the
generation prompt, ids checked against the model's embedding rows. ``TransformersLM`` and
``VLLMLM`` both use it, so the same prompt gives the same ids on either backend.

Example::

    >>> from awrs_adapters.lm.prompts import encode_prompt
    >>> from awrs_adapters.models import load
    >>> tok = load().tokenizer           # SmolLM2-135M-Instruct's tokenizer
    >>> ids = encode_prompt(tok, [{"role": "user", "content": "Hi"}], fallback_id=0,
    ...                     rows=len(tok))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, VocabularyError

__all__ = ["check_text", "context_message", "encode_prompt"]


def check_text(text: str, name: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` if ``text`` is not valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(
            f"{name} holds {text[e.start:e.end]!r} at character {e.start}, which is not "
            "valid Unicode text (a lone surrogate, e.g. from a bad decode); clean the text "
            "(text.encode('utf-8', 'replace').decode())") from None


def encode_prompt(
    tokenizer: Any, prompt: Any, *, fallback_id: int, rows: int,
    context_length: int | None = None, max_tokens: int | None = None,
) -> list[int]:
    """Token ids of ``prompt``.

    A ``str`` is tokenized as is (with the tokenizer's own special tokens, e.g. BOS);
    a list of ``{"role", "content"}`` messages goes through the chat template with
    ``add_generation_prompt=True``; a list of ints, or an int tensor or array of shape
    ``[n]`` or ``[1, n]``, is used as token ids, each in ``[0, rows)`` (the model's
    embedding rows); ``None`` is the empty prompt. An empty prompt becomes ``[bos]``
    (``[fallback_id]`` without BOS). A prompt of ``context_length`` tokens or more is
    refused (no room to generate), and so is one that leaves fewer than ``max_tokens``
    positions (when given): the model would run past the positions it was trained on.
    A batch (shape ``[b, n]``, ``b > 1``) is refused: pass one prompt.
    """
    ids = _encode(tokenizer, prompt, fallback_id, rows)
    if context_length is not None and len(ids) >= context_length:
        raise ConfigError(
            f"the prompt is {len(ids)} tokens; the model reads at most {context_length} "
            "(max_position_embeddings), and generating needs room after the prompt: "
            "shorten the prompt")
    if context_length is not None and max_tokens is not None and len(ids) + max_tokens > context_length:
        raise ConfigError(context_message(len(ids), max_tokens, context_length))
    return ids


def context_message(prompt_tokens: int, max_tokens: int | None, context_length: int) -> str:
    """The message for a prompt plus ``max_tokens`` that do not fit the context."""
    room = context_length - prompt_tokens
    asked = f"max_tokens={max_tokens}" if max_tokens is not None else "the generation"
    return (
        f"the prompt is {prompt_tokens} tokens and {asked} would take it past the "
        f"{context_length} positions the model reads (max_position_embeddings), where its "
        f"outputs are not defined; pass max_tokens <= {room}, or shorten the prompt")


def _encode(tok: Any, prompt: Any, fallback_id: int, rows: int) -> list[int]:
    if prompt is None:
        prompt = ""
    if isinstance(prompt, bytes | bytearray):
        raise ConfigError(
            f"prompt={bytes(prompt)!r:.60} is bytes; pass text (prompt.decode('utf-8')) or "
            "token ids as a list of ints")
    if isinstance(prompt, str):
        check_text(prompt, "prompt")
        ids = [int(i) for i in tok(prompt)["input_ids"]] if prompt else []
        if not ids:
            ids = [int(tok.bos_token_id if tok.bos_token_id is not None else fallback_id)]
        return ids
    if isinstance(prompt, torch.Tensor | np.ndarray):
        return _check_ids(_array_ids(prompt), rows)
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) for m in prompt):
        return _encode_chat(tok, prompt)
    if isinstance(prompt, Sequence) and prompt and all(
        isinstance(i, int | np.integer) and not isinstance(i, bool) for i in prompt
    ):
        return _check_ids([int(i) for i in prompt], rows)
    raise ConfigError(
        f"prompt={prompt!r:.80}; pass a string, a list of chat messages "
        '[{"role": "user", "content": "..."}], or a list of token ids'
    )


def _array_ids(prompt: torch.Tensor | np.ndarray) -> list[int]:
    """Token ids of a tensor or array of shape ``[n]`` or ``[1, n]`` (a batch is refused)."""
    kind = "tensor" if isinstance(prompt, torch.Tensor) else "array"
    if isinstance(prompt, torch.Tensor):
        integer = not (prompt.is_floating_point() or prompt.is_complex()
                       or prompt.dtype == torch.bool)
    else:
        integer = np.issubdtype(prompt.dtype, np.integer)
    if not integer:
        raise ConfigError(f"prompt is a {prompt.dtype} {kind}; token ids are integers "
                          "(e.g. tokenizer(text, return_tensors='pt').input_ids)")
    shape = tuple(prompt.shape)
    if len(shape) == 2 and shape[0] == 1:
        prompt = prompt[0]
    elif len(shape) == 2:
        raise ConfigError(
            f"prompt is a {kind} of shape {list(shape)}: a batch of {shape[0]} prompts; pass "
            f"one prompt (shape [n] or [1, n]), e.g. prompt[0], and call once per prompt "
            "(model.generate(..., custom_generate=smc_generate) from "
            "awrs_adapters.integrations.transformers takes batches)")
    elif len(shape) > 2:
        raise ConfigError(
            f"prompt is a {kind} of shape {list(shape)}; pass one prompt of token ids, "
            "shape [n] or [1, n]")
    return [int(i) for i in prompt.reshape(-1).tolist()]


def _encode_chat(tok: Any, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    if getattr(tok, "chat_template", None) is None:
        raise ConfigError(
            "prompt is a list of chat messages but the tokenizer has no chat template "
            "(a base model); pass a plain string prompt, or set tokenizer.chat_template"
        )
    for k, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not role:
            raise ConfigError(
                f"prompt[{k}] has role={role!r}; each message needs a 'role' "
                "('system', 'user' or 'assistant') and a 'content' string")
        if isinstance(content, str):
            check_text(content, f"prompt[{k}]['content']")
        elif not (isinstance(content, list) and content
                  and all(isinstance(p, Mapping) for p in content)):
            raise ConfigError(
                f"prompt[{k}] ({role}) has content={content!r:.60}; pass the message "
                "text as a string")
    try:
        text = tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    except Exception as e:  # the template's own rule (e.g. roles must alternate)
        raise ConfigError(
            f"the tokenizer's chat template rejected the messages: {type(e).__name__}: "
            f"{e}; check the roles and their order") from e
    return [int(i) for i in tok(text, add_special_tokens=False)["input_ids"]]


def _check_ids(ids: list[int], rows: int) -> list[int]:
    bad = [i for i in ids if not 0 <= i < rows]
    if bad:
        raise VocabularyError(
            f"prompt token id(s) {bad[:5]} outside the model's vocabulary [0, {rows}); "
            "were the ids made by this model's tokenizer?")
    if not ids:
        raise ConfigError("prompt is an empty list of token ids; pass None for no prompt")
    return ids
