"""The models a pipeline is made of, as diffusers names them: ``pipe.unet``, ``pipe.vae``,
``pipe.text_encoder`` ... Each is one exported graph of the folder (the VAE: its decoder and encoder
graphs) with the component's ``config.json`` as ``.config``; calling one runs its graph on numpy
feeds. They are what ``pipe.components`` holds, so ``OtherPipeline(**pipe.components)`` shares them
(and their loaded sessions), and what ``UNet2DConditionModel.from_pretrained(folder, subfolder="unet")``
loads on its own, to be given to a pipeline's ``from_pretrained(..., unet=unet)``.

``AutoencoderKL`` keeps diffusers' memory switches: ``enable_slicing()`` (one image at a time) and
``enable_tiling()`` (vae_tiling.py), with diffusers' ``tile_sample_min_size`` (the VAE config's
``sample_size``), ``tile_latent_min_size`` and ``tile_overlap_factor`` (0.25) as attributes one may set.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from ..schedulers.configuration import FrozenConfig
from .common import run_batched, sample_latent_distribution
from .graphs import Graphs
from .vae_tiling import tiled


class ModelOutput(dict):
    """Graph outputs by name; also by position (``out[0]``) and as attributes, as transformers' outputs."""

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return list(self.values())[key]
        return super().__getitem__(key)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class GraphModel:
    """One graph of a pipeline (``component``: its folder name) with its config; ``model(**feeds)`` runs it."""

    #: the component folder this class loads by default (``from_pretrained(folder)`` without subfolder)
    default_component = ""

    def __init__(self, graphs: Graphs, component: str):
        self.graphs, self.component = graphs, component

    @property
    def config(self) -> FrozenConfig:
        return FrozenConfig(self.graphs.configs.get(self.component, {}))

    @property
    def graph(self):
        return self.graphs[self.component]

    @property
    def inputs(self):
        return self.graph.inputs

    @property
    def outputs(self):
        return self.graph.outputs

    @property
    def path(self) -> Path:
        return self.graphs.paths[self.component]

    @property
    def dtype(self) -> np.dtype:
        """The graph's floating-point input type (float16 for an fp16 export)."""
        for spec in self.graph.inputs.values():
            if np.issubdtype(spec.dtype, np.floating):
                return spec.dtype
        return np.dtype(np.float32)

    @property
    def device(self) -> str:
        return str(self.graphs.options.get("device") or "cpu")

    def __call__(self, *args, **feeds) -> ModelOutput:
        names = list(self.graph.inputs)
        if len(args) > len(names):
            raise TypeError(f"{self.component} takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        feeds = {**dict(zip(names, args)), **feeds}
        return ModelOutput(self.graph(**feeds))

    forward = __call__

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **options):
        """One component of an exported pipeline folder (or Hub repo): ``subfolder`` names it (default:
        this class's usual folder); ``options`` as the pipelines' ``from_pretrained`` takes them."""
        from .keywords import sort_keywords
        from .loading import PipelineLoadError, engine_options, pick_backend, resolve_folder
        from .precision import check_request as check_precision_request, plan_precision

        request = sort_keywords(f"{cls.__name__}.from_pretrained", options)
        check_precision_request(request)
        name = subfolder or cls.default_component
        root = resolve_folder(pretrained_model_name_or_path, backend=request.backend, variant=request.variant,
                              **request.hub)
        folder = root / name if name and (root / name).is_dir() else root
        if name and folder == root and not (root / "config.json").is_file():
            raise PipelineLoadError(f"{root}: no {name}/ component folder")
        component = folder.name
        backend = pick_backend(folder.parent, [component], request.backend)
        graphs = Graphs(folder.parent, [component], backend, engine_options(backend, **request.engine),
                        low_memory=request.low_memory, variant=request.variant)
        if request.precision is not None:
            graphs.variant = plan_precision(request.precision, backend, graphs, providers=request.engine.get(
                "providers"), dtype=request.dtype).variant
        return cls(graphs, component)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> None:
        """Copy the component's folder (graph, weights, config) to ``save_directory`` (``variant``,
        ``safe_serialization``: torch weight-file options, nothing to choose for a graph)."""
        shutil.copytree(self.path, Path(save_directory), dirs_exist_ok=True)
        if push_to_hub:
            self.push_to_hub(kwargs.get("repo_id") or Path(save_directory).name, token=kwargs.get("token"))

    def push_to_hub(self, repo_id: str, commit_message: str | None = None, private: bool | None = None,
                    token=None, create_pr: bool = False, **kwargs):
        """Upload the component's folder to a Hub repo (created if needed), as diffusers' push_to_hub."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        return api.upload_folder(repo_id=repo, folder_path=str(self.path), create_pr=create_pr,
                                 commit_message=commit_message or f"Upload {type(self).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.component}: {self.path}, {self.graphs.backend})"


class UNet2DConditionModel(GraphModel):
    default_component = "unet"


class UNet2DModel(GraphModel):
    default_component = "unet"


class CLIPTextModel(GraphModel):
    default_component = "text_encoder"


class CLIPTextModelWithProjection(GraphModel):
    default_component = "text_encoder_2"


@dataclasses.dataclass
class DecoderOutput:
    sample: np.ndarray

    def __getitem__(self, index):
        return (self.sample,)[index]


class DiagonalGaussianDistribution:
    """The VAE encoder's Gaussian: ``parameters`` holds [mean, logvar] on the channel axis."""

    def __init__(self, parameters: np.ndarray):
        self.parameters = np.asarray(parameters, dtype=np.float32)
        self.mean, logvar = np.split(self.parameters, 2, axis=1)
        self.logvar = np.clip(logvar, -30.0, 20.0)

    @property
    def std(self) -> np.ndarray:
        return np.exp(np.float32(0.5) * self.logvar)

    def sample(self, generator=None) -> np.ndarray:
        return sample_latent_distribution(self.parameters, generator)

    def mode(self) -> np.ndarray:
        return self.mean


@dataclasses.dataclass
class AutoencoderKLOutput:
    latent_dist: DiagonalGaussianDistribution

    def __getitem__(self, index):
        return (self.latent_dist,)[index]


class AutoencoderKL(GraphModel):
    """``pipe.vae``: the ``vae_decoder`` graph (and ``vae_encoder`` when exported), with diffusers'
    ``decode`` / ``encode``, slicing and tiling."""

    default_component = "vae_decoder"
    encoder_component = "vae_encoder"

    def __init__(self, graphs: Graphs, component: str = "vae_decoder"):
        super().__init__(graphs, component)
        self.use_slicing = self.use_tiling = False
        size = self.config.get("sample_size", 512)
        size = size[0] if isinstance(size, (list, tuple)) else size
        self.tile_sample_min_size = int(size)
        self.tile_latent_min_size = int(size / self.scale_factor)
        self.tile_overlap_factor = 0.25

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **options):
        """The VAE of an exported folder: ``subfolder`` is "vae" (both graphs), "vae_decoder" or "vae_encoder"."""
        if subfolder in (None, "vae"):
            model = GraphModel.from_pretrained.__func__(cls, pretrained_model_name_or_path, "vae_decoder", **options)
            encoder = model.graphs.folder / cls.encoder_component
            if encoder.is_dir():
                model.graphs = Graphs(model.graphs.folder, ["vae_decoder", "vae_encoder"], model.graphs.backend,
                                      model.graphs.options, model.graphs.low_memory, model.graphs.variant)
            return model
        return GraphModel.from_pretrained.__func__(cls, pretrained_model_name_or_path, subfolder, **options)

    @property
    def config(self) -> FrozenConfig:
        configs = self.graphs.configs
        return FrozenConfig(configs.get(self.component) or configs.get(self.encoder_component) or {})

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.config.get("block_out_channels", [0, 0, 0, 0])) - 1)

    def enable_slicing(self) -> None:
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(self, use_tiling: bool = True) -> None:
        self.use_tiling = use_tiling

    def disable_tiling(self) -> None:
        self.use_tiling = False

    # ---- decoding -------------------------------------------------------------------------------

    def _decode_graph(self, z: np.ndarray) -> np.ndarray:
        graph = self.graphs[self.component]
        return run_batched(graph, lambda rows, n: {"latent_sample": z[rows]}, z.shape[0], "latent_sample")["sample"]

    def _decode(self, z: np.ndarray) -> np.ndarray:
        if self.use_tiling and max(z.shape[-2:]) > self.tile_latent_min_size:
            return tiled(self._decode_graph, z, self.tile_latent_min_size, self.tile_sample_min_size,
                         self.tile_overlap_factor)
        return self._decode_graph(z).astype(np.float32, copy=False)

    def decode(self, z, return_dict: bool = True, generator=None):
        """Latents (already divided by the scaling factor) -> images in [-1, 1], NCHW."""
        z = np.asarray(z, dtype=np.float32)
        if self.use_slicing and z.shape[0] > 1:
            decoded = np.concatenate([self._decode(z[i:i + 1]) for i in range(z.shape[0])])
        else:
            decoded = self._decode(z)
        return DecoderOutput(sample=decoded) if return_dict else (decoded,)

    # ---- encoding -------------------------------------------------------------------------------

    def _encode_graph(self, x: np.ndarray) -> np.ndarray:
        if self.encoder_component not in self.graphs:
            from .loading import PipelineLoadError

            raise PipelineLoadError(f"{self.graphs.folder}: no vae_encoder graph (export the pipeline with it)")
        graph = self.graphs[self.encoder_component]
        return run_batched(graph, lambda rows, n: {"sample": x[rows]}, x.shape[0], "sample")["latent_parameters"]

    def latent_parameters(self, x: np.ndarray) -> np.ndarray:
        """Images [n, 3, H, W] in [-1, 1] -> the encoder's [mean, logvar] (diffusers' moments), tiled and
        sliced as ``encode`` is."""
        x = np.asarray(x, dtype=np.float32)

        def one(batch):
            if self.use_tiling and max(batch.shape[-2:]) > self.tile_sample_min_size:
                return tiled(self._encode_graph, batch, self.tile_sample_min_size, self.tile_latent_min_size,
                             self.tile_overlap_factor)
            return self._encode_graph(batch).astype(np.float32, copy=False)

        if self.use_slicing and x.shape[0] > 1:
            return np.concatenate([one(x[i:i + 1]) for i in range(x.shape[0])])
        return one(x)

    def encode(self, x, return_dict: bool = True):
        dist = DiagonalGaussianDistribution(self.latent_parameters(x))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def __repr__(self) -> str:
        return f"AutoencoderKL({self.graphs.folder}: {', '.join(n for n in self.graphs.names if n.startswith('vae'))})"


#: the model class of each graph component
MODEL_CLASSES = {
    "unet": UNet2DConditionModel,
    "text_encoder": CLIPTextModel,
    "text_encoder_2": CLIPTextModelWithProjection,
    "vae_decoder": AutoencoderKL,
}


def model_for(graphs: Graphs, component: str) -> GraphModel:
    """The model object of a component (its diffusers class where we have one); either VAE graph gives
    the one AutoencoderKL of both."""
    if component in ("vae_decoder", "vae_encoder"):
        return AutoencoderKL(graphs, "vae_decoder" if "vae_decoder" in graphs else component)
    return MODEL_CLASSES.get(component, GraphModel)(graphs, component)
