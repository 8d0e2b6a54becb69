"""The stages of an edit and the components each runs, for stage-by-stage placement
(``ReviseEditPipeline.enable_model_cpu_offload``, ``offload="stages"``), which puts one stage's
components on the device at a time, and for the memory estimate of such an edit."""

#: The components (``ReviseModel`` attributes) each stage of an edit runs.
STAGES = {
    "encode": ("vae", "understanding", "vision_head", "adapter", "text_encoder", "visual_context_adapter",
               "context_tokens"),
    "denoise": ("transformer",),
    "decode": ("vae",),
    "critic": ("understanding",),      # best-of's critic
}
OFFLOAD_MODES = ("stages",)
