"""Reduced-nonlinearity GPT family for private inference (Jha & Reagen; spec ``pi_transformer.md``).

``model.py`` holds the network (``PIGPT``), ``config.py`` its ``PIConfig``, ``variants.py`` the registered
``pi-gpt2-<size>-<variant>`` builders, ``entropy.py`` the attention-entropy metrics and regularizer,
``census.py`` / ``cost.py`` the nonlinearity census and the private-inference cost model, ``plots.py``
the figures. Importing this package does not register the variants (``zoo.list_models`` does).
"""
from zoo.models.pi_transformer.config import EntropyRegConfig, PIConfig
from zoo.models.pi_transformer.model import PIGPT, PIOutput, next_token_loss

__all__ = ["EntropyRegConfig", "PIConfig", "PIGPT", "PIOutput", "next_token_loss"]
