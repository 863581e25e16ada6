"""The :class:`Family` object and the open registry of families.

A family is everything that differs between model lines (SAM-1, SAM 2.1, EfficientViT-SAM,
SAM-HQ ...): the config type(s) it owns, how a checkpoint is recognised as one of its
networks, how the network is built and its checkpoint keys normalised, its geometry, its
image-state type, its engine factory and its export graphs. Code outside the family asks the
family (:func:`family_for_config`, :func:`family_of`, :func:`geometry_of`) instead of testing
``isinstance`` on configs or re-deriving sizes.

Families register themselves with :func:`register_family`, from samkit or from any other
package (nothing in ``samkit`` needs editing)::

    from samkit.families import Family, SquareResize, register_family

    register_family(Family(
        name="toy",
        config_types=(ToyEncoderConfig,),
        recognize=recognize_toy,      # state dict -> config, or None if not a toy network
        build=build_toy,              # config -> untrained network (eval mode, .config set)
        geometry=lambda config: SquareResize(config.image_size),
    ))

Recognition tries the families in registration order, the built-in ones first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from samkit.errors import ArgumentTypeError, CheckpointError, UnknownKeyError
from samkit.families.geometry import Geometry
from samkit.families.state import ImageState

__all__ = [
    "Family",
    "families",
    "family_for_config",
    "family_of",
    "geometry_of",
    "get_family",
    "recognize",
    "register_family",
]


def _same_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    return dict(state_dict)


@dataclass(frozen=True)
class Family:
    """One model family; see the module docstring.

    Attributes:
        name: registry key, e.g. ``"sam1"``.
        config_types: the config classes the family owns. A config belongs to the family when
            it is an instance of one of them, or when its ``encoder`` attribute is (SAM-style
            configs that share :class:`~samkit.registry.SamConfig` and differ by encoder).
        recognize: state dict (already through ``filter_keys``) -> the config of the network
            whose tensors these are, or ``None`` when they are not this family's. May raise
            :class:`~samkit.errors.CheckpointError` for a checkpoint that is clearly this
            family's but unsupported.
        build: config -> an untrained network in eval mode with ``network.config`` set. The
            network follows :class:`~samkit.modeling.Sam`'s interface (``image_encoder``,
            ``decode``, ``prepare_decoder``, ``pixel_mean`` / ``pixel_std``) when the family
            uses the default torch engine.
        geometry: config -> its :class:`~samkit.families.geometry.Geometry`.
        filter_keys: a loaded checkpoint's state dict -> the keys ``build``'s network has
            (drop unused heads, rename other layouts); default: unchanged.
        state_type: the image-state class its engine returns (default
            :class:`~samkit.families.state.ImageState`, whose ``extras`` carry further
            feature maps); coded to arrays by :func:`~samkit.families.state.state_to_arrays`.
        make_engine: ``(network, **options) -> Engine``; ``None``: the torch engine
            (:class:`~samkit.engine.TorchEngine`) with the usual options.
        export_graphs: ``(network) -> (encoder graph class, decoder graph class)`` for ONNX
            export, built as ``EncoderGraph(network, bake_preprocess)`` and
            ``DecoderGraph(network, return_single_mask, return_low_res)`` under the contract of
            :mod:`samkit.export.graphs`; ``None``: the family cannot be exported.
        describe: config -> a short human name (default: ``"custom <family name>"``).
        official_keys: ``(network, state, checkpoint=None) -> state`` in the layout the
            family's reference loaders expect (e.g. tensors they require but samkit does not
            build, taken from the ``checkpoint`` file when given); default: unchanged.
        encoder_blocks: network -> its image encoder's blocks, input to output (partial
            fine-tuning trains the last ones); default: none (the whole encoder trains).
    """

    name: str
    config_types: tuple[type, ...]
    recognize: Callable[[Mapping[str, Any]], Any | None]
    build: Callable[[Any], Any]
    geometry: Callable[[Any], Geometry]
    filter_keys: Callable[[Mapping[str, Any]], dict[str, Any]] = _same_keys
    state_type: type = ImageState
    make_engine: Callable[..., Any] | None = None
    export_graphs: Callable[[Any], Any] | None = None
    describe: Callable[[Any], str] | None = field(default=None)
    official_keys: Callable[..., dict[str, Any]] | None = None
    encoder_blocks: Callable[[Any], list[Any]] | None = None

    def owns(self, config: Any) -> bool:
        """Whether ``config`` (or its ``encoder``) is one of this family's config types."""
        return isinstance(config, self.config_types) or isinstance(
            getattr(config, "encoder", None), self.config_types
        )

    def name_of(self, config: Any) -> str:
        """A short human name of ``config``'s architecture."""
        return self.describe(config) if self.describe is not None else f"custom {self.name}"


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add ``family`` to the registry (under ``family.name``) and return it.

    Raises:
        ArgumentTypeError: ``family`` is not a :class:`Family`.
        UnknownKeyError: a family of that name exists and ``replace`` is False.
    """
    if not isinstance(family, Family):
        raise ArgumentTypeError(f"family must be a samkit Family, got {type(family).__name__}")
    if family.name in _FAMILIES and not replace:
        raise UnknownKeyError(
            f"a model family named {family.name!r} is already registered "
            "(pass replace=True to replace it)"
        )
    _FAMILIES[family.name] = family
    return family


def families() -> tuple[Family, ...]:
    """The registered families, in registration order."""
    return tuple(_FAMILIES.values())


def get_family(name: str) -> Family:
    """The family registered under ``name``."""
    if name not in _FAMILIES:
        raise UnknownKeyError(f"unknown model family {name!r}; known: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def family_for_config(config: Any) -> Family:
    """The family owning ``config``.

    Raises:
        ArgumentTypeError: no registered family owns the config's type.
    """
    for family in _FAMILIES.values():
        if family.owns(config):
            return family
    inner = getattr(config, "encoder", config)
    raise ArgumentTypeError(
        f"no model family owns a {type(inner).__name__} config; registered families: "
        f"{', '.join(_FAMILIES)} (register one with samkit.families.register_family)"
    )


def family_of(network: Any) -> Family:
    """The family of a built network (from its ``config``); SAM-1 for a network without one
    (a ``Sam`` assembled by hand)."""
    config = getattr(network, "config", None)
    if config is None:
        return get_family("sam1")
    return family_for_config(config)


def geometry_of(network: Any) -> Geometry:
    """The geometry of a built network; a hand-assembled ``Sam`` without ``config`` gets
    SAM-1's resize-longest-and-pad at its ``image_size``."""
    config = getattr(network, "config", None)
    if config is None:
        from samkit.families.geometry import ResizeLongestPad

        return ResizeLongestPad(int(network.image_size))
    return family_for_config(config).geometry(config)


def recognize(state_dict: Mapping[str, Any]) -> tuple[Family, Any, dict[str, Any]]:
    """The family, config and filtered state dict of a checkpoint, from its tensors alone.

    Raises:
        CheckpointError: no registered family recognises the tensors.
    """
    for family in _FAMILIES.values():
        filtered = family.filter_keys(state_dict)
        config = family.recognize(filtered)
        if config is not None:
            return family, config, filtered
    sample = ", ".join(list(state_dict)[:5]) or "none"
    raise CheckpointError(
        f"not a SAM checkpoint: no registered model family ({', '.join(_FAMILIES)}) recognises "
        f"its tensors (found keys like {sample})"
    )
