"""The A1111 samplers diffusers has no scheduler for, ported from k-diffusion's sampling.py
(tests/parity/test_kdiffusion_only.py runs them against k-diffusion itself):

- DPM++ 2S a (``sample_dpmpp_2s_ancestral``): dpmpp_2s_ancestral.py
- DPM fast (``sample_dpm_fast``): dpm_fast.py
- DPM adaptive (``sample_dpm_adaptive``): dpm_adaptive.py

What they share: kdiffusion_base.py (one ``step`` per model call, t = -log(sigma), the ancestral
split) and dpm_solver_steps.py (DPM-Solver-1/2/3 steps, for DPM fast and DPM adaptive).
"""

from .dpm_adaptive import DPMAdaptiveScheduler
from .dpm_fast import DPMFastScheduler
from .dpmpp_2s_ancestral import DPMPP2SAncestralScheduler
from .kdiffusion_base import ancestral_step

__all__ = ["DPMAdaptiveScheduler", "DPMFastScheduler", "DPMPP2SAncestralScheduler", "ancestral_step"]
