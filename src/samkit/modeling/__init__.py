"""Network modules. Attribute names equal the official checkpoints' keys."""

from samkit.modeling.mask_decoder import MaskDecoder
from samkit.modeling.prompt_encoder import PromptEncoder
from samkit.modeling.sam import Sam
from samkit.modeling.tiny_vit import TinyViT
from samkit.modeling.transformer import TwoWayTransformer
from samkit.modeling.vit import ImageEncoderViT

__all__ = ["ImageEncoderViT", "MaskDecoder", "PromptEncoder", "Sam", "TinyViT", "TwoWayTransformer"]
