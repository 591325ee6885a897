"""Where the pipeline comes from: a local diffusers folder, a Hub repo (huggingface_hub), or a single-file
checkpoint (``.safetensors``) read by diffusers' ``from_single_file`` with a local diffusers folder as its
config (``config=``: model_index.json, the components' config.json, tokenizer and scheduler; its weights,
if any, are not used)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from edge_sched.jsonfile import read_json

from .errors import SourceError

# pipeline class -> (family, components turned into graphs, other components shipped)
# sd: text encoder + UNet2DConditionModel + VAE (also for img2img, inpainting (9-channel UNet), LCM)
# sdxl: two text encoders (pooled embeddings, time ids); unet2d: a UNet2DModel alone, exported directly
_SD = ("sd", ("text_encoder", "unet", "vae"), ("tokenizer", "scheduler"))
_SDXL = ("sdxl", ("text_encoder", "text_encoder_2", "unet", "vae"), ("tokenizer", "tokenizer_2", "scheduler"))
_UNET2D = ("unet2d", ("unet",), ("scheduler",))
# flow-matching transformers (export/flow.py): sd3: two CLIP encoders with projection + T5 (text_encoder_3,
# optional as in diffusers); flux: CLIP + T5 (text_encoder_2)
_SD3 = ("sd3", ("text_encoder", "text_encoder_2", "transformer", "vae"), ("tokenizer", "tokenizer_2", "scheduler"))
_FLUX = ("flux", ("text_encoder", "text_encoder_2", "transformer", "vae"), ("tokenizer", "tokenizer_2", "scheduler"))
# sana: Gemma2 + the Sana transformer + a DC-AE (optimum-onnx's get_sana_models_for_export)
_SANA = ("sana", ("text_encoder", "transformer", "vae"), ("tokenizer", "scheduler"))
OPTIONAL_MODELS = ("text_encoder_3",)  # exported when the pipeline has it
PIPELINES = {
    "StableDiffusionPipeline": _SD,
    "StableDiffusionImg2ImgPipeline": _SD,
    "StableDiffusionInpaintPipeline": _SD,
    "LatentConsistencyModelPipeline": _SD,
    "StableDiffusionXLPipeline": _SDXL,
    "DDPMPipeline": _UNET2D,
    "DDIMPipeline": _UNET2D,
    "StableDiffusion3Pipeline": _SD3,
    "StableDiffusion3Img2ImgPipeline": _SD3,
    "FluxPipeline": _FLUX,
    "FluxImg2ImgPipeline": _FLUX,
    "SanaPipeline": _SANA,
}
SUPPORTED_PIPELINES = tuple(PIPELINES)
# every model component any supported pipeline turns into graphs (what a Hub download may need)
MODEL_COMPONENTS = tuple(dict.fromkeys([*(c for _, models, _ in PIPELINES.values() for c in models), *OPTIONAL_MODELS]))
TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3")
SAFE_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class ResolvedSource:
    folder: Path  # local folder in save_pretrained layout
    source_id: str  # what the user passed (repo id or absolute folder path)
    kind: str  # "local" | "hub"
    revision: str | None  # commit hash for the Hub, None for a local folder
    pipeline_class: str
    model_index: dict
    checkpoint: Path | None = None  # single-file weights; ``folder`` then holds only the configs


def hub_allow_patterns(allow_pickle: bool = False) -> list[str]:
    """Only what the export needs: model_index, configs, tokenizer, scheduler and safetensors weights
    of the model components (pickles only when explicitly allowed)."""
    patterns = ["model_index.json", "scheduler/*.json", *(f"{t}/*" for t in TOKENIZERS)]
    for c in MODEL_COMPONENTS:
        patterns += [f"{c}/config.json", *(f"{c}/{w}" for w in SAFE_WEIGHTS), f"{c}/*.safetensors.index.json"]
        patterns += [f"{c}/*-of-*.safetensors"]
        if allow_pickle:
            patterns += [f"{c}/diffusion_pytorch_model.bin", f"{c}/pytorch_model.bin", f"{c}/*.bin.index.json",
                         f"{c}/*-of-*.bin"]
    return patterns


def looks_like_repo_id(source: str) -> bool:
    return bool(_REPO_ID.match(source)) and not source.startswith((".", "~")) and source.count("/") <= 1


def _offline(local_files_only: bool) -> bool:
    if local_files_only:
        return True
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "ON", "YES", "TRUE")


def resolve_source(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    allow_pickle: bool = False,
    config: str | os.PathLike | None = None,
) -> ResolvedSource:
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_file():
        return _single_file(path, config, revision, allow_pickle)
    if config is not None:
        raise SourceError(f"{text}: --config applies to single-file checkpoints, not to a folder or repo id")
    if path.is_dir():
        folder, kind, commit, source_id = path.resolve(), "local", None, str(path.resolve())
        if revision is not None:
            raise SourceError(f"{text}: --revision applies to Hub repos, not to a local folder")
    elif not looks_like_repo_id(text):
        raise SourceError(f"{text}: no such folder (and not a Hub repo id of the form owner/name)")
    else:
        folder, commit = _download(text, revision, token, cache_dir, local_files_only, allow_pickle)
        kind, source_id = "hub", text
    model_index = check_folder(folder, text, allow_pickle=allow_pickle)
    return ResolvedSource(folder, source_id, kind, commit, model_index["_class_name"], model_index)


def _single_file(path: Path, config, revision, allow_pickle: bool) -> ResolvedSource:
    path = path.resolve()
    if revision is not None:
        raise SourceError(f"{path}: --revision applies to Hub repos, not to a local file")
    if path.suffix == ".safetensors":
        pass
    elif path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise SourceError(
                f"{path}: a pickle checkpoint; unpickling can run arbitrary code, so it needs allow_pickle=True "
                "(--allow-pickle) for a source you trust (or convert it to .safetensors)"
            )
    else:
        raise SourceError(
            f"{path}: is a file but not a checkpoint (.safetensors); give a diffusers folder (save_pretrained "
            "layout), a Hub repo id, or a .safetensors checkpoint with --config"
        )
    if config is None:
        raise SourceError(
            f"{path}: a single-file checkpoint needs config=<local diffusers folder> (--config) with the "
            "pipeline's model_index.json, component configs, tokenizer and scheduler (nothing is downloaded)"
        )
    folder = Path(config).expanduser().resolve()
    if not folder.is_dir():
        raise SourceError(f"{config}: the config for {path.name} must be a local diffusers folder")
    model_index = check_folder(folder, str(folder), allow_pickle=allow_pickle, weights=False)
    return ResolvedSource(folder, str(path), "single_file", None, model_index["_class_name"], model_index, path)


def _download(repo_id, revision, token, cache_dir, local_files_only, allow_pickle) -> tuple[Path, str | None]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from edge_sched.hub import HubOfflineError, hub_access

    offline = _offline(local_files_only)
    if not offline:  # no network: said at once, not after the Hub client's timeouts and retries
        try:
            offline = hub_access(repo_id, revision=revision, cache_dir=cache_dir)
        except HubOfflineError as e:
            raise SourceError(str(e)) from None
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                token=token,
                cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
                local_files_only=offline,
                allow_patterns=hub_allow_patterns(allow_pickle),
            )
        )
    except LocalEntryNotFoundError as e:
        where = f" in the cache {cache_dir}" if cache_dir else " in the Hugging Face cache"
        why = "offline mode (local_files_only / HF_HUB_OFFLINE)" if offline else "the Hub could not be reached"
        raise SourceError(
            f"{repo_id}" + (f"@{revision}" if revision else "") + f": not a local folder, not found{where}, "
            f"and {why}"
        ) from e
    except GatedRepoError as e:
        raise SourceError(f"{repo_id}: gated repo; pass a token that has access (--token)") from e
    except RepositoryNotFoundError as e:
        raise SourceError(f"{repo_id}: no such Hub repo (or it is private: pass --token)") from e
    except RevisionNotFoundError as e:
        raise SourceError(f"{repo_id}: no revision {revision!r}") from e
    except Exception as e:  # connection errors and the like
        raise SourceError(f"{repo_id}: download failed: {type(e).__name__}: {e}") from e
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else revision
    return folder, commit


def check_folder(folder: Path, label: str, *, allow_pickle: bool = False, weights: bool = True) -> dict:
    """Refuse what we cannot (or must not) load, before torch sees a byte of it. ``weights=False``: a
    config-only folder (the weights come from a single-file checkpoint)."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise SourceError(f"{label}: no model_index.json; is this a diffusers pipeline folder (save_pretrained layout)?")
    model_index = read_json(index_file, error=SourceError)
    cls = model_index.get("_class_name")
    if cls not in SUPPORTED_PIPELINES:
        raise SourceError(
            f"{index_file}: pipeline class {cls!r} is not supported; supported: {', '.join(SUPPORTED_PIPELINES)}"
        )
    _, models, others = PIPELINES[cls]
    required = models + others
    missing = [c for c in required if not _declared(model_index.get(c))]
    if missing:
        raise SourceError(f"{index_file}: missing components: {', '.join(missing)}")
    for name in required:
        library = model_index[name][0]
        if library not in ("diffusers", "transformers"):
            raise SourceError(
                f"{index_file}: component {name} comes from {library!r}; only diffusers and transformers "
                "classes are loaded (never remote code)"
            )
        if not (folder / name).is_dir():
            raise SourceError(f"{label}: component folder {name}/ is missing")
    for name in models:
        sub = folder / name
        if not (sub / "config.json").is_file():
            raise SourceError(f"{sub}: no config.json")
        if not weights:
            continue
        files = [p.name for p in sub.iterdir() if p.is_file()]
        safe = [f for f in files if f.endswith((".safetensors", ".safetensors.index.json"))]
        pickles = [f for f in files if f.endswith((*PICKLE_SUFFIXES, ".bin.index.json"))]
        if not safe and pickles and not allow_pickle:
            raise SourceError(
                f"{sub}: only pickle weights ({', '.join(sorted(pickles))}); unpickling can run arbitrary code, "
                "so it needs allow_pickle=True (--allow-pickle) for a source you trust"
            )
        if not safe and not pickles:
            raise SourceError(f"{sub}: no weights (expected {' or '.join(SAFE_WEIGHTS)})")
    return model_index


def _declared(entry) -> bool:
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] is not None and entry[1] is not None
