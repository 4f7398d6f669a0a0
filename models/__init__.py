"""Model families: LeYOLO detectors and the reduced-nonlinearity PI-GPT transformers.

Importing this package registers every family's variants (as timm's ``timm.models`` does), so the registry
is complete whenever ``zoo`` is imported. A new family adds its ``variants`` import here.
"""
from zoo.models.leyolo import variants as _leyolo_variants  # noqa: F401  (registers leyolo-*)
from zoo.models.pi_transformer import variants as _pi_variants  # noqa: F401  (registers pi-gpt2-*)
