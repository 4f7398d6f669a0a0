"""Private inference measured under a real two-party-computation engine (SPU), not estimated.

``measure`` (``zoo.pi_measure``) and ``env`` run in the zoo's own environment and never import jax or spu;
``jax_pigpt`` and ``spu_worker`` run only inside the isolated ``.venv-mpc`` (``make mpc``), which the zoo
reaches through files and one subprocess.
"""
